"""`vibe-edge convert` and `vibe-edge pull` end to end: fetch, convert, verify, quantize, register.

The CLI only parses options into a ConvertRequest / PullRequest and prints the report; this
module decides the order of steps and what lands in the models directory:

    models/NAME-BF16.gguf (+ .manifest.json)    the unquantized file (kept unless only quants asked)
    models/NAME-Q4_K_M.gguf (+ .manifest.json)  one per --quant, all from the unquantized file
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vibe_edge.convert.atomic import (
    DEFAULT_FREE_SPACE_MARGIN,
    TMP_PREFIX,
    atomic_output,
    check_free_space,
    output_locks,
    remove_stale_temp_files,
    staging_path,
)
from vibe_edge.convert.core import DEFAULT_OUTTYPE, convert_folder, resolve_outtype
from vibe_edge.convert.errors import ConvertError, DependencyMissing, VerificationFailed
from vibe_edge.gguf_reader import read_gguf
from vibe_edge.convert.hub import download_checkpoint, download_gguf, looks_like_repo_id
from vibe_edge.convert.quantize import QUANT_TYPES, normalize_quant, quantize_gguf
from vibe_edge.convert.reader import open_checkpoint
from vibe_edge.convert.writer import ProgressFn, SourceInfo
from vibe_edge.errors import ModelFileError
from vibe_edge.registry import Manifest, publish_model

__all__ = ["ConvertReport", "ConvertRequest", "PullRequest", "pull_model", "run_convert"]

LogFn = Callable[[str], None]


@dataclass
class ConvertRequest:
    src: str
    out_dir: Path
    quants: list[str] = field(default_factory=list)
    outtype: str = DEFAULT_OUTTYPE
    name: str | None = None
    revision: str | None = None
    verify: bool | None = None  # None: verify when transformers + torch are installed
    keep_unquantized: bool | None = None  # None: keep it only when no --quant was asked
    force: bool = False
    kl_budget: float | None = None
    eval_text: str | None = None  # override the built-in evaluation text (tests use a short one)
    parity_corpus: list[str] | None = None
    free_space_margin: int = DEFAULT_FREE_SPACE_MARGIN
    progress: ProgressFn | None = None
    log: LogFn | None = None


@dataclass
class ConvertReport:
    manifests: list[Manifest]
    verification: dict[str, Any]
    quant_table: Any | None = None  # verify.QuantTable
    removed_unquantized: bool = False


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    if not name:
        raise ConvertError(f"cannot make a model name from {text!r}", hint="pass --name")
    return name


def _resolve_source(req: ConvertRequest) -> tuple[Path, SourceInfo]:
    local = Path(req.src).expanduser()
    if local.is_dir():
        return local.resolve(), SourceInfo(local.resolve())
    if looks_like_repo_id(req.src):
        snap = download_checkpoint(req.src, req.revision)
        return snap.folder, SourceInfo(snap.folder, repo=req.src, revision=snap.commit or snap.revision)
    raise ConvertError(f"{req.src!r} is neither a folder nor a hub repository id (org/name)",
                       hint="pass a local Hugging Face model folder, or e.g. WeiboAI/VibeThinker-1.5B")


def _say(req: ConvertRequest, message: str) -> None:
    if req.log is not None:
        req.log(message)


def _check_targets(paths: list[Path], force: bool) -> None:
    if force:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        raise ConvertError(f"{existing[0]} already exists", hint="pass --force to replace it, or --name for another name")


def run_convert(req: ConvertRequest) -> ConvertReport:
    quants = [normalize_quant(q) for q in req.quants]
    quants = sorted(set(quants), key=list(QUANT_TYPES).index)
    out_dir = Path(req.out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir)

    verify = req.verify
    if verify is None:
        from vibe_edge.convert.verify import have_verify_deps
        verify = have_verify_deps()
        if not verify:
            _say(req, "verification skipped: install the `verify` extra (transformers, torch) to prove "
                      "the conversion faithful")
    elif verify:
        from vibe_edge.convert.verify import have_verify_deps
        if not have_verify_deps():
            raise DependencyMissing("--verify needs transformers and torch",
                                    hint="pip install 'vibe-edge[verify]', or pass --no-verify")

    folder, source = _resolve_source(req)
    base_name = _safe_name(req.name or (source.repo.split("/")[-1] if source.repo else folder.name))
    outtype = resolve_outtype(req.outtype, open_checkpoint(folder).dominant_float_dtype())
    base_path = out_dir / f"{base_name}-{outtype.upper()}.gguf"
    quant_paths = {q: out_dir / f"{base_name}-{q}.gguf" for q in quants}
    keep_base = req.keep_unquantized if req.keep_unquantized is not None else not quants
    finals = ([base_path] if keep_base else []) + list(quant_paths.values())
    with output_locks(finals):  # a second convert of the same names is refused, not raced
        _check_targets(finals, req.force)
        return _convert_locked(req, folder, source, outtype, base_path, quant_paths, keep_base,
                                   verify)


def _convert_locked(req: ConvertRequest, folder: Path, source: SourceInfo, outtype: str,
                    base_path: Path, quant_paths: dict[str, Path], keep_base: bool,
                    verify: bool) -> ConvertReport:
    out_dir = base_path.parent
    # Every output is written under a temporary name (not *.gguf, so the registry never lists
    # it) and renamed into place only after its manifest is written (publish_model). The
    # unquantized file is also an intermediate when only quantizations are wanted: then it is
    # deleted at the end instead of published.
    intermediate = staging_path(base_path) if keep_base else \
        out_dir / f"{TMP_PREFIX}intermediate-{base_path.stem}.{os.getpid()}"
    staged = {q: staging_path(qpath) for q, qpath in quant_paths.items()}
    created: list[Path] = []
    try:
        _say(req, f"converting {folder} -> {base_path.name} ({outtype})")
        created.append(intermediate)
        result = convert_folder(folder, intermediate, outtype=outtype, source=source, model_name=None,
                                progress=req.progress, free_space_margin=req.free_space_margin)
        verification: dict[str, Any] = {}
        if verify:
            verification.update(_verify_unquantized(req, folder, intermediate))
        for q, qpath in quant_paths.items():
            _say(req, f"quantizing {base_path.name} -> {qpath.name}")
            created.append(staged[q])
            quantize_gguf(intermediate, staged[q], q, progress=req.progress,
                          free_space_margin=req.free_space_margin)
        table = None
        if verify and quant_paths:
            from vibe_edge.convert.verify import DEFAULT_KL_BUDGET, evaluate_quants
            _say(req, "evaluating quantizations against the unquantized file")
            table = evaluate_quants(intermediate, staged, text=req.eval_text,
                                    kl_budget=req.kl_budget if req.kl_budget is not None else DEFAULT_KL_BUDGET,
                                    base_label=outtype.upper(), progress=req.progress)
            verification["quantizations"] = table.to_dict()

        common = {
            "architecture": result.metadata["architecture"],
            "n_params": result.n_params,
            "context_length": result.metadata.get("context_length"),
            "source": source.to_dict(),
            "pre_tokenizer": result.metadata.get("pre_tokenizer"),
        }
        manifests: list[Manifest] = []
        if keep_base:
            manifests.append(publish_model(out_dir, intermediate, base_path, quant=outtype.upper(),
                                           **common, verification=_base_verification(verification)))
        for q, qpath in quant_paths.items():
            ver = _base_verification(verification)
            if table is not None:
                row = next(r for r in table.rows if r.quant == q)
                ver["quantization"] = {**row.to_dict(), "reference": outtype.upper(),
                                       "recommended": table.recommended == q, "kl_budget": table.kl_budget}
            manifests.append(publish_model(out_dir, staged[q], qpath, quant=q, **common, verification=ver))
    except BaseException:
        for path in created:  # a failed or unfaithful conversion leaves nothing behind
            path.unlink(missing_ok=True)
        raise
    finally:
        if not keep_base:
            intermediate.unlink(missing_ok=True)
    return ConvertReport(manifests, verification, table, removed_unquantized=not keep_base)


def _base_verification(verification: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in verification.items() if k in ("tokenizer_parity", "logits")}


def _verify_unquantized(req: ConvertRequest, folder: Path, gguf_path: Path) -> dict[str, Any]:
    from vibe_edge.convert.verify import compare_logits, tokenizer_parity

    _say(req, "checking tokenizer parity (Hugging Face vs llama.cpp)")
    parity = tokenizer_parity(folder, gguf_path, req.parity_corpus)
    if not parity.passed:
        shown = "\n".join(f"  {m['text']!r}: hf {m['hf']} vs gguf {m['gguf']}" for m in parity.mismatches[:5])
        raise VerificationFailed(
            f"tokenizer parity failed on {parity.n_mismatches} of {parity.n_strings} strings:\n{shown}",
            hint="the GGUF would tokenize differently from the original model; no file was kept")
    _say(req, "comparing logits with transformers")
    logits = compare_logits(folder, gguf_path)
    if not logits.passed:
        raise VerificationFailed(
            "llama.cpp's logits differ from transformers': " + "; ".join(logits.failures),
            hint="the converted model does not reproduce the checkpoint; no file was kept")
    return {"tokenizer_parity": parity.to_dict(), "logits": logits.to_dict()}


# --- pull ----------------------------------------------------------------------------------------

@dataclass
class PullRequest:
    repo: str
    out_dir: Path
    quant: str = "Q4_K_M"
    revision: str | None = None
    name: str | None = None
    force: bool = False
    free_space_margin: int = DEFAULT_FREE_SPACE_MARGIN


def _check_gguf(path: Path) -> dict[str, Any]:
    """Parse the GGUF header and return what the manifest needs; ModelFileError on junk."""
    info = read_gguf(path)
    arch = info.architecture
    if arch is None:
        raise ModelFileError(f"{path.name} has no general.architecture key", hint="the file is not a model")
    if not info.tensors:
        raise ModelFileError(f"{path.name} holds no tensors (a vocabulary-only file?)")
    return {"architecture": arch, "n_params": sum(t.n_elements for t in info.tensors),
            "context_length": info.fields.get(f"{arch}.context_length")}


def pull_model(req: PullRequest) -> Manifest:
    """Fetch a published GGUF, check it, and register it in out_dir."""
    quant = req.quant.upper()
    snap, cached = download_gguf(req.repo, quant, req.revision)
    info = _check_gguf(cached)
    out_dir = Path(req.out_dir).expanduser()
    name = _safe_name(req.name or cached.stem)
    final = out_dir / f"{name}.gguf"
    with output_locks([final]):
        _check_targets([final], req.force)
        size = cached.stat().st_size
        check_free_space(out_dir, size, req.free_space_margin)
        staged = staging_path(final)
        try:
            with atomic_output(staged) as tmp:
                try:  # a hard link shares the cache's bytes (same filesystem): no second copy on disk
                    tmp.hardlink_to(cached.resolve())
                except OSError:
                    shutil.copyfile(cached, tmp)
            return publish_model(out_dir, staged, final, name=name, quant=quant, **info,
                                 source={"repo": req.repo, "revision": snap.commit or snap.revision,
                                         "file": cached.name})
        finally:
            staged.unlink(missing_ok=True)
