"""GGUF writing: metadata like llama.cpp's converter, tensor data streamed in row chunks.

The gguf package's writer normally holds every tensor until the end; we only give it tensor
*infos* up front (it needs shapes for the header), then stream each tensor's bytes chunk by chunk
straight from the memmapped safetensors. Peak memory is one chunk (DEFAULT_CHUNK_BYTES) plus the
q/k tensors that must be permuted whole.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from vibe_edge.convert.errors import CheckpointError, ConvertError
from vibe_edge.convert.reader import Checkpoint
from vibe_edge.convert.spec import ModelSpec, TensorPlan, permute_qk
from vibe_edge.convert.tokenizer import TokenizerExport, add_tokenizer_to_gguf

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "OUTTYPES",
    "ProgressFn",
    "SourceInfo",
    "WriteResult",
    "estimate_size",
    "f32_to_bf16_bits",
    "write_gguf",
]

# Rows are converted in chunks of about this many float32 bytes: small enough to stay in cache
# (4 MB measured fastest on the 1.5B benchmark), large enough to amortise the per-chunk overhead.
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024

# --outtype -> (GGML tensor type, llama file type, numpy storage dtype)
OUTTYPES: dict[str, tuple[gguf.GGMLQuantizationType, gguf.LlamaFileType, np.dtype]] = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32, np.dtype(np.float32)),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16, np.dtype(np.float16)),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16, np.dtype(np.uint16)),
}

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class SourceInfo:
    """Where the checkpoint came from, recorded in the GGUF and the manifest."""

    folder: Path
    repo: str | None = None
    revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"folder": str(self.folder)}
        if self.repo:
            data["repo"] = self.repo
        if self.revision:
            data["revision"] = self.revision
        return data


@dataclass
class WriteResult:
    path: Path
    outtype: str
    n_params: int
    n_tensors: int
    size_bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)


class _FastArrayWriter(gguf.GGUFWriter):
    """GGUFWriter whose homogeneous string/int arrays pack in one pass.

    The stock writer packs arrays element by element with type checks (about 2 s for the
    151,936 tokens + 151,387 merges of the Qwen2 vocabulary); the bytes are the same. This
    overrides gguf's private `_pack_val`, so pyproject pins the gguf minor version it was
    tested with, and tests/convert/test_gguf_writer.py compares its bytes with the stock
    writer's: an upgrade that changes the method fails there, not in a user's file.
    """

    def _pack_val(self, val: Any, vtype: gguf.GGUFValueType, add_vtype: bool,
                  sub_type: gguf.GGUFValueType | None = None) -> bytes:
        little = self.endianess == gguf.GGUFEndian.LITTLE
        if (vtype == gguf.GGUFValueType.ARRAY and little and isinstance(val, list)
                and len(val) > FAST_ARRAY_MIN_ITEMS and sub_type is None):
            if all(type(v) is str for v in val):
                head = struct.pack("<IIQ", int(vtype), int(gguf.GGUFValueType.STRING), len(val))
                encoded = [v.encode("utf-8") for v in val]
                body = b"".join(struct.pack("<Q", len(e)) + e for e in encoded)
                return (head if add_vtype else head[4:]) + body
            if all(type(v) is int for v in val) and min(val) >= -2**31 and max(val) < 2**31:
                head = struct.pack("<IIQ", int(vtype), int(gguf.GGUFValueType.INT32), len(val))
                return (head if add_vtype else head[4:]) + np.asarray(val, dtype="<i4").tobytes()
        return super()._pack_val(val, vtype, add_vtype, sub_type)


# Arrays longer than this take the one-pass path (shorter ones are not worth it).
FAST_ARRAY_MIN_ITEMS = 1024


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns, round-to-nearest-even, NaNs kept quiet (as gguf-py does)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    bits = np.where(nan, (bits & np.uint32(0xFFFF0000)) | np.uint32(0x00400000), bits)
    rounded = (bits.astype(np.uint64) + (0x7FFF + ((bits >> 16) & 1))) >> 16
    return rounded.astype(np.uint16)


def _bf16_passthrough(raw: np.ndarray) -> np.ndarray:
    """bf16 -> bf16 without a float round trip: identical bits, except NaNs made quiet."""
    bits = np.asarray(raw, dtype=np.uint16)
    nan = (bits & 0x7FFF) > 0x7F80
    if nan.any():
        bits = np.where(nan, bits | np.uint16(0x0040), bits)
    return bits


def _tensor_type(plan: TensorPlan, outtype: str) -> tuple[gguf.GGMLQuantizationType, np.dtype]:
    if plan.keep_f32:
        return gguf.GGMLQuantizationType.F32, np.dtype(np.float32)
    qtype, _, storage = OUTTYPES[outtype]
    return qtype, storage


def estimate_size(plans: list[TensorPlan], outtype: str, n_tokens: int) -> int:
    """Bytes the GGUF will take: tensor data, alignment and a generous tokenizer allowance."""
    total = 0
    for plan in plans:
        _, storage = _tensor_type(plan, outtype)
        total += gguf.GGUFWriter.ggml_pad(plan.n_elements * storage.itemsize, gguf.GGUF_DEFAULT_ALIGNMENT)
    return total + n_tokens * 64 + 16 * 1024 * 1024


def _convert_chunk(plan: TensorPlan, chunk_f32: np.ndarray, outtype_dtype: np.dtype,
                   qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(chunk_f32, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        try:
            # The cast itself flags a finite value that becomes inf: no extra pass over the data
            # (inf or nan already in the checkpoint pass through unflagged, as in llama.cpp).
            with np.errstate(over="raise"):
                return chunk_f32.astype(np.float16)
        except FloatingPointError:
            worst = float(np.nanmax(np.abs(chunk_f32[np.isfinite(chunk_f32)])))
            raise ConvertError(
                f"tensor {plan.gguf_name} has values up to {worst:.4g}, beyond float16's range "
                "(65504): an f16 file would hold inf and the model would print garbage",
                hint="use --outtype bf16 (or f32)") from None
    return f32_to_bf16_bits(chunk_f32)


def _iter_tensor_bytes(plan: TensorPlan, outtype: str, chunk_bytes: int):
    """Yield the GGUF bytes of one tensor as arrays, a chunk of rows at a time."""
    qtype, storage = _tensor_type(plan, outtype)
    if plan.generated is not None:
        yield np.ascontiguousarray(plan.generated, dtype=np.float32)
        return
    ref = plan.source
    assert ref is not None
    if plan.permute_heads:
        # Reordering mixes rows across the tensor's head blocks: do it whole (q/k are small).
        data = permute_qk(ref.array_f32(), plan.permute_heads)
        yield _convert_chunk(plan, data, storage, qtype)
        return
    if ref.dtype == "BF16" and qtype == gguf.GGMLQuantizationType.BF16:
        row_elems = max(1, ref.n_elements // max(1, ref.n_rows))
        step = max(1, chunk_bytes // (row_elems * 4))
        raw = ref.raw()
        for start in range(0, ref.n_rows, step):
            yield _bf16_passthrough(raw[start:start + step])
        return
    if not ref.shape:
        yield _convert_chunk(plan, ref.array_f32().reshape(()), storage, qtype)
        return
    row_elems = max(1, ref.n_elements // max(1, ref.n_rows))
    step = max(1, chunk_bytes // (row_elems * 4))

    def convert(start: int) -> np.ndarray:
        return _convert_chunk(plan, ref.rows_f32(start, start + step), storage, qtype)

    yield from _ordered_parallel(convert, range(0, ref.n_rows, step))


# Chunks converted at once: numpy's casts release the GIL, so chunks convert on all cores while
# the main thread writes; the bound keeps memory at a few chunks.
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _ordered_parallel(fn: Callable[[int], np.ndarray], starts: range) -> Iterator[np.ndarray]:
    """fn over starts on a small thread pool, yielded in order, at most workers+1 in flight."""
    if DEFAULT_WORKERS == 1 or len(starts) <= 1:
        for start in starts:
            yield fn(start)
        return
    pending: deque[Future[np.ndarray]] = deque()
    with ThreadPoolExecutor(max_workers=DEFAULT_WORKERS, thread_name_prefix="convert") as pool:
        try:
            for start in starts:
                pending.append(pool.submit(fn, start))
                if len(pending) > DEFAULT_WORKERS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:  # an error or Ctrl-C: do not convert the rest
                fut.cancel()


def _add_hparams(writer: gguf.GGUFWriter, spec: ModelSpec, ftype: gguf.LlamaFileType) -> None:
    """The architecture keys llama.cpp's converter writes for Qwen2 and Llama."""
    writer.add_block_count(spec.n_layers)
    if spec.context_length is not None:
        writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.hidden)
    writer.add_feed_forward_length(spec.ffn)
    writer.add_head_count(spec.config.get("num_attention_heads", spec.n_head))
    if "num_key_value_heads" in spec.config:
        writer.add_head_count_kv(spec.config["num_key_value_heads"])
    rope = spec.rope_scaling
    if rope.get("rope_type", rope.get("type")) == "linear" and rope.get("factor") is not None:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    if spec.rope_theta is not None:
        writer.add_rope_freq_base(spec.rope_theta)
    if spec.rms_eps is not None:
        writer.add_layer_norm_rms_eps(spec.rms_eps)
    # llama.cpp's converter reads the config through transformers, whose Llama config always has
    # head_dim (Qwen2's only when config.json says so): write it in the same cases.
    head_dim = spec.config.get("head_dim")
    if head_dim is None and spec.gguf_architecture == "llama":
        head_dim = spec.head_dim
    if head_dim is not None:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_file_type(ftype)
    if spec.gguf_architecture == "llama":
        writer.add_vocab_size(spec.vocab_size)
        writer.add_rope_dimension_count(spec.head_dim)


def _pad(fout: Any, n: int, alignment: int) -> None:
    """Zeros up to the next multiple of `alignment` after `n` bytes (GGUF's tensor alignment)."""
    pad = gguf.GGUFWriter.ggml_pad(n, alignment) - n
    if pad:
        fout.write(bytes(pad))


def write_gguf(
    spec: ModelSpec,
    checkpoint: Checkpoint,
    plans: list[TensorPlan],
    tokenizer: TokenizerExport,
    out_path: Path,
    *,
    outtype: str,
    source: SourceInfo,
    model_name: str | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: ProgressFn | None = None,
) -> WriteResult:
    """Write the GGUF to `out_path` (the caller makes it atomic). Returns what was written."""
    if outtype not in OUTTYPES:
        raise ConvertError(f"unknown --outtype {outtype!r}", hint=f"choose one of {', '.join(OUTTYPES)}")
    _, ftype, _ = OUTTYPES[outtype]
    writer = _FastArrayWriter(path=None, arch=spec.gguf_architecture)
    total_bytes = 0
    for plan in plans:
        qtype, storage = _tensor_type(plan, outtype)
        nbytes = plan.n_elements * storage.itemsize
        writer.add_tensor_info(plan.gguf_name, plan.shape, storage, nbytes,
                               raw_dtype=qtype if qtype == gguf.GGMLQuantizationType.BF16 else None)
        total_bytes += nbytes
    n_params = writer.get_total_parameter_count()[0]

    # general.* keys: the gguf package's own model-card/config heuristics, as llama.cpp does.
    writer.add_type(gguf.GGUFType.MODEL)
    try:
        metadata = gguf.Metadata.load(None, checkpoint.folder, model_name, n_params)
    except Exception:  # a malformed model card must not block a conversion; names still follow
        metadata = gguf.Metadata(name=model_name)
    if source.repo and metadata.name is None:
        metadata.name = source.repo.split("/")[-1]
    if metadata.name is None:
        metadata.name = checkpoint.folder.name
    if metadata.size_label is None and n_params > 0:
        metadata.size_label = gguf.size_label(n_params, n_params, 0, 0)
    metadata.set_gguf_meta_model(writer)
    _add_hparams(writer, spec, ftype)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_tokenizer_to_gguf(writer, checkpoint.folder, tokenizer, spec.gguf_architecture)
    # vibe-edge's own provenance keys (llama.cpp ignores unknown keys).
    writer.add_string("vibe_edge.tokenizer.check_hash", tokenizer.check_hash)
    if source.repo:
        writer.add_string("vibe_edge.source.repo", source.repo)
        writer.add_string("vibe_edge.source.revision", source.revision or "main")

    # The header, metadata and tensor directory through gguf's own writer (its public steps, in
    # its order); then the writer is closed and the tensor data appended from our own handle,
    # in chunks: gguf's write_tensor_data wants each tensor whole in memory.
    try:
        writer.write_header_to_file(path=Path(out_path))
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
    finally:
        writer.close()
    alignment = writer.data_alignment
    with open(out_path, "ab") as fout:
        done = 0
        for plan in plans:
            _pad(fout, fout.tell(), alignment)
            written = 0
            for chunk in _iter_tensor_bytes(plan, outtype, chunk_bytes):
                # file.write, not ndarray.tofile: a short write (disk full) then raises OSError
                # with its errno (ENOSPC/EFBIG), which atomic_output reports as a full disk.
                fout.write(memoryview(np.ascontiguousarray(chunk)).cast("B"))
                written += chunk.nbytes
                done += chunk.nbytes
                if progress is not None:
                    progress("convert", done, total_bytes)
            expected = plan.n_elements * _tensor_type(plan, outtype)[1].itemsize
            if written != expected:  # a guard against our own bugs: never write a wrong layout
                raise CheckpointError(f"internal error: wrote {written} bytes for {plan.gguf_name}, "
                                      f"expected {expected}")
            _pad(fout, written, alignment)
        fout.flush()
    return WriteResult(
        path=Path(out_path), outtype=outtype, n_params=n_params, n_tensors=len(plans),
        size_bytes=Path(out_path).stat().st_size,
        metadata={"name": metadata.name, "size_label": metadata.size_label},
    )

