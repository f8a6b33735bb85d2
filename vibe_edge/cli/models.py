"""`vibe-edge models` (list), `models info NAME` (GGUF metadata), `models rm NAME` (delete)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vibe_edge.cli.common import cli_errors, console
from vibe_edge.errors import ModelNotFound
from vibe_edge.registry import list_models, remove_model
from vibe_edge.settings import load_settings

ModelsDirOpt = Annotated[Optional[Path], typer.Option(
    "--models-dir", help="Models directory. Default: from settings.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

# Arrays longer than this are summarised in `models info` (the token list has 151,936 entries).
MAX_SHOWN_ITEMS = 8


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="The local models directory: list, inspect, remove.",
                             invoke_without_command=True, no_args_is_help=False)
    models_app.callback(invoke_without_command=True)(models_list)
    models_app.command("info")(models_info)
    models_app.command("rm")(models_rm)
    app.add_typer(models_app, name="models")


def _dir(models_dir: Optional[Path]) -> Path:
    return models_dir if models_dir is not None else load_settings().resolved_models_dir


def _entry_dict(entry: Any) -> dict[str, Any]:
    m = entry.manifest
    data: dict[str, Any] = {"name": entry.name, "path": str(entry.path),
                            "size_bytes": entry.path.stat().st_size if entry.path.exists() else None}
    if m is not None:
        data.update({k: v for k, v in m.to_dict().items() if k not in ("name",)})
        data["verified"] = _verified(m.verification)
    return data


def _verified(verification: dict[str, Any]) -> bool | None:
    if not verification:
        return None
    checks = [v.get("passed") for v in verification.values() if isinstance(v, dict) and "passed" in v]
    return all(checks) if checks else None


def models_list(
    ctx: typer.Context,
    models_dir: ModelsDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the models in the models directory."""
    if ctx.invoked_subcommand is not None:
        return
    with cli_errors():
        folder = _dir(models_dir)
        entries = [_entry_dict(e) for e in list_models(folder)]
    if as_json:
        print(json.dumps({"models_dir": str(folder), "models": entries}, indent=2))
        return
    if not entries:
        console.print(f"no models in {folder}. Convert one with `vibe-edge convert SRC --quant Q4_K_M` "
                      "or fetch one with `vibe-edge pull REPO`.")
        return
    console.print(f"{'NAME':<36} {'QUANT':<8} {'SIZE':>9} {'ARCH':<7} {'CTX':>7}  VERIFIED")
    for e in entries:
        size = f"{(e['size_bytes'] or 0) / 2**20:.0f}MB"
        verified = {True: "yes", False: "FAILED", None: "-"}[e.get("verified")]
        console.print(f"{e['name']:<36} {e.get('quant') or '?':<8} {size:>9} {e.get('architecture') or '?':<7} "
                      f"{e.get('context_length') or '?':>7}  {verified}")
    console.print(f"({folder})")


def _find(folder: Path, name: str) -> Any:
    for entry in list_models(folder):
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in list_models(folder)) or "none"
    raise ModelNotFound(f"no model named {name!r} in {folder} (known: {known})")


def _gguf_metadata(path: Path) -> dict[str, Any]:
    from vibe_edge.gguf_reader import read_gguf

    info = read_gguf(path)
    meta: dict[str, Any] = {}
    for key, value in info.fields.items():
        if isinstance(value, list) and len(value) > MAX_SHOWN_ITEMS:
            value = {"length": len(value), "first": value[:MAX_SHOWN_ITEMS]}
        elif isinstance(value, str) and len(value) > 400 and key != "tokenizer.chat_template":
            value = value[:400] + "..."
        meta[key] = value
    types: dict[str, int] = {}
    for t in info.tensors:
        kind = getattr(t.type, "name", f"type {t.type}")  # a type newer than the gguf tables
        types[kind] = types.get(kind, 0) + 1
    return {"metadata": meta, "n_tensors": len(info.tensors), "tensor_types": types,
            "n_params": sum(t.n_elements for t in info.tensors)}


def models_info(
    name: Annotated[str, typer.Argument(help="A model name from `vibe-edge models`.")],
    models_dir: ModelsDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a model's manifest and its GGUF metadata."""
    with cli_errors():
        entry = _find(_dir(models_dir), name)
        info = {"name": entry.name, "path": str(entry.path),
                "manifest": entry.manifest.to_dict() if entry.manifest else None,
                **_gguf_metadata(entry.path)}
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    console.print(f"[bold]{info['name']}[/]  {info['path']}")
    if info["manifest"]:
        m = info["manifest"]
        console.print(f"quant {m.get('quant')}, {m.get('n_params') or 0:,} parameters, "
                      f"context {m.get('context_length')}, sha256 {str(m.get('sha256'))[:16]}...")
        console.print(f"source: {json.dumps(m.get('source'))}")
        if m.get("verification"):
            console.print(f"verification: {json.dumps(m['verification'], default=str)[:600]}")
    console.print(f"tensors: {info['n_tensors']} ({', '.join(f'{k} x{v}' for k, v in info['tensor_types'].items())})")
    for key, value in info["metadata"].items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if key == "tokenizer.chat_template":
            text = f"({len(value)} characters)"
        console.print(f"  {key} = {text}")


def models_rm(
    name: Annotated[str, typer.Argument(help="The model to delete (file and manifest).")],
    models_dir: ModelsDirOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a model's GGUF file and manifest."""
    with cli_errors():
        folder = _dir(models_dir)
        entry = _find(folder, name)
        if not yes:
            typer.confirm(f"delete {entry.path}?", abort=True)
        removed = remove_model(folder, name)
    if as_json:
        print(json.dumps({"removed": [str(p) for p in removed]}))
        return
    for path in removed:
        console.print(f"removed {path}")
