"""One checkpoint folder -> one unquantized GGUF, atomically. The heart of `vibe-edge convert`."""

from __future__ import annotations

from pathlib import Path

from vibe_edge.convert.atomic import DEFAULT_FREE_SPACE_MARGIN, atomic_output, check_free_space
from vibe_edge.convert.errors import ConvertError
from vibe_edge.convert.reader import open_checkpoint
from vibe_edge.convert.spec import load_spec, plan_tensors
from vibe_edge.convert.tokenizer import export_tokenizer
from vibe_edge.convert.writer import DEFAULT_CHUNK_BYTES, OUTTYPES, ProgressFn, SourceInfo, WriteResult, estimate_size, write_gguf

__all__ = ["DEFAULT_OUTTYPE", "convert_folder", "resolve_outtype"]

# "auto" follows the checkpoint: bf16 weights stay bf16 (lossless; VibeThinker ships bf16, and
# bf16 cannot overflow the way f16 can), f16 stays f16, f32 stays f32.
DEFAULT_OUTTYPE = "auto"


def resolve_outtype(requested: str, checkpoint_dtype: str | None) -> str:
    requested = requested.lower()
    if requested != "auto":
        if requested not in OUTTYPES:
            raise ConvertError(f"unknown --outtype {requested!r}", hint=f"choose one of auto, {', '.join(OUTTYPES)}")
        return requested
    return {"BF16": "bf16", "F16": "f16", "F32": "f32"}.get(checkpoint_dtype or "", "f16")


def convert_folder(
    folder: Path,
    out_path: Path,
    *,
    outtype: str = DEFAULT_OUTTYPE,
    source: SourceInfo | None = None,
    model_name: str | None = None,
    progress: ProgressFn | None = None,
    free_space_margin: int = DEFAULT_FREE_SPACE_MARGIN,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> WriteResult:
    """Convert a local Qwen2/Llama safetensors folder into `out_path`.

    Everything that can be checked before writing is checked first (architecture, shards, headers,
    shapes, tokenizer, disk space); the file appears under its final name only when complete.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConvertError(f"{folder} is not a folder", hint="SRC is a model folder or a hub id like org/name")
    spec = load_spec(folder)
    checkpoint = open_checkpoint(folder)
    plans = plan_tensors(spec, checkpoint)
    tokenizer = export_tokenizer(folder, spec.vocab_size)
    resolved = resolve_outtype(outtype, checkpoint.dominant_float_dtype())
    out_path = Path(out_path)
    check_free_space(out_path.parent, estimate_size(plans, resolved, len(tokenizer.tokens)), free_space_margin)
    with atomic_output(out_path) as tmp:
        result = write_gguf(spec, checkpoint, plans, tokenizer, tmp, outtype=resolved,
                            source=source or SourceInfo(folder), model_name=model_name,
                            chunk_bytes=chunk_bytes, progress=progress)
    result.path = out_path
    result.metadata.update({
        "architecture": spec.gguf_architecture,
        "hf_architecture": spec.hf_architecture,
        "context_length": spec.context_length,
        "pre_tokenizer": tokenizer.pre,
        "tokenizer_source": tokenizer.source,
        "tied_embeddings": spec.tied_embeddings,
    })
    return result
