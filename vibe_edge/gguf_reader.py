"""The one GGUF header reader: metadata and the tensor directory, never the tensor data.

Everything that looks into a GGUF before llama.cpp does goes through here: the engine's
pre-load check and the hardware plan (modelfile.inspect_gguf), `vibe-edge models info`, and
convert's checks of what it wrote or pulled. llama.cpp answers a bad file with a terse log
line, a NULL model or a crash (a truncated file is mmapped and read past its end), so this
reader is what stops a damaged or hostile header: every read is bounds-checked against the
file's size, counts can only consume bytes that exist, nesting and dimensions are limited, and
every failure is a ModelFileError that says what is wrong and what to do.

The layout and names come from gguf-py (`GGUFValueType`, `Keys`, `GGML_QUANT_SIZES`), so new
value and quantization types follow package upgrades; gguf-py's own GGUFReader is not used
because it builds a numpy view of every array element (seconds on a 152k-token vocabulary)
and reports a cut-off file as a bare numpy or struct error.
"""

from __future__ import annotations

import math
import mmap
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from vibe_edge.errors import ModelFileError

__all__ = [
    "GGUF_MAGIC",
    "SUPPORTED_GGUF_VERSIONS",
    "GGUFFile",
    "GGUFTensor",
    "keep_all_arrays",
    "keep_small_arrays",
    "read_gguf",
]

GGUF_MAGIC = struct.pack("<I", gguf.GGUF_MAGIC)  # b"GGUF"
# llama.cpp reads versions 2 and 3; version 1 (2023) used 32-bit counts and is refused by it.
SUPPORTED_GGUF_VERSIONS = (2, 3)
# ggml tensors have at most 4 dimensions: a larger count is garbage, not a tensor.
MAX_TENSOR_DIMS = 8
# Real files nest arrays at most once; deeper nesting is garbage (and would recurse without end).
MAX_ARRAY_NESTING = 4
# Arrays up to this length are kept by keep_small_arrays (token lists and merges are skipped).
SMALL_ARRAY_ITEMS = 1024
FIXED_HEADER_BYTES = 24  # magic, version, tensor count, metadata count

_VT = gguf.GGUFValueType
_SCALARS: dict[int, tuple[str, int]] = {
    _VT.UINT8: ("B", 1), _VT.INT8: ("b", 1), _VT.UINT16: ("H", 2), _VT.INT16: ("h", 2),
    _VT.UINT32: ("I", 4), _VT.INT32: ("i", 4), _VT.FLOAT32: ("f", 4), _VT.BOOL: ("?", 1),
    _VT.UINT64: ("Q", 8), _VT.INT64: ("q", 8), _VT.FLOAT64: ("d", 8),
}

KeepArray = Callable[[str, int], bool]
"""(metadata key, element count) -> keep the array's values? Skipped arrays are only counted."""


def keep_all_arrays(_key: str, _count: int) -> bool:
    return True


def keep_small_arrays(key: str, count: int) -> bool:
    """Small arrays, plus the token list (its think tokens tell whether a model reasons)."""
    return count <= SMALL_ARRAY_ITEMS or key == gguf.Keys.Tokenizer.LIST


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]  # ggml order (fastest dimension first), as GGUF stores it
    type: gguf.GGMLQuantizationType | int  # an int only for a type newer than the gguf tables
    offset: int  # absolute offset of the data in the file
    nbytes: int | None  # None for a type whose block size the gguf tables do not know

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass
class GGUFFile:
    path: Path
    size_bytes: int
    version: int
    fields: dict[str, Any]
    tensors: list[GGUFTensor]
    data_offset: int
    skipped_arrays: dict[str, int] = field(default_factory=dict)  # key -> element count

    @property
    def architecture(self) -> str | None:
        arch = self.fields.get(gguf.Keys.General.ARCHITECTURE)
        return arch if isinstance(arch, str) and arch else None

    def arch_field(self, key: str, default: Any = None) -> Any:
        """An architecture-scoped key: arch_field(gguf.Keys.LLM.BLOCK_COUNT) is qwen2.block_count."""
        arch = self.architecture
        return self.fields.get(key.format(arch=arch), default) if arch else default

    def tensor(self, name: str) -> GGUFTensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def raw(self, name: str) -> np.ndarray:
        """A tensor's bytes (a read-only memmap)."""
        t = self.tensor(name)
        if t.nbytes is None:
            raise ModelFileError(f"{self.path.name}: tensor {name} has type {t.type}, unknown to "
                                 "this gguf package", hint="upgrade the gguf package")
        return np.memmap(self.path, dtype=np.uint8, mode="r", offset=t.offset, shape=(t.nbytes,))


def read_gguf(path: str | Path, *, keep_array: KeepArray = keep_all_arrays) -> GGUFFile:
    """Read a GGUF's header, metadata and tensor directory; ModelFileError when llama.cpp could
    not use the file (not GGUF, truncated, damaged, an unsupported version)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(
            f"model file not found: {path}",
            hint="check the path, or run `vibe-edge models` to list the models vibe-edge knows",
        )
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a directory, not a GGUF file",
            hint="point at the .gguf file inside it; a Hugging Face checkpoint folder must first be "
            "converted with `vibe-edge convert`",
        )
    try:
        # Non-blocking, and checked on the open descriptor: a FIFO or a device (/dev/zero) given
        # as --model must be refused at once, not read forever or taken for an empty file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}",
                             hint="check the file's permissions") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ModelFileError(f"{path} is {_file_kind(st.st_mode)}, not a model file",
                             hint="point --model at a .gguf file (a name from `vibe-edge models`, "
                                  "or a path)")
    size = st.st_size
    try:
        with os.fdopen(fd, "rb") as f:
            head = f.read(512)  # enough to recognise foreign formats
            if head[:4] != GGUF_MAGIC:
                raise _not_gguf(path, head, size)
            # A file this short cannot hold even the fixed header; mmap of it would also fail.
            if size < FIXED_HEADER_BYTES:
                raise _truncated(path, size, f"the fixed header ({FIXED_HEADER_BYTES} bytes)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _parse(path, size, mm, keep_array)
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}",
                             hint="check the file's permissions") from exc


# -- recognising what a non-GGUF file is ---------------------------------------------------------

def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _not_gguf(path: Path, head: bytes, size: int) -> ModelFileError:
    looks_like = _describe_foreign(head, size)
    message = f"{path} is not a GGUF file" + (f": it looks like {looks_like}" if looks_like else
                                              f" (it starts with {head[:8]!r})")
    if looks_like and "Git LFS" in looks_like:
        hint = "fetch the real file (`git lfs pull`) or download it again"
    elif looks_like and ("web page" in looks_like or "empty" in looks_like or "zeros" in looks_like):
        hint = "the download failed: download the file again"
    elif looks_like and "legacy GGML" in looks_like:
        hint = "this pre-GGUF format is no longer read by llama.cpp: re-convert the original " \
               "checkpoint with `vibe-edge convert`"
    else:
        hint = "vibe-edge runs GGUF files; turn a Hugging Face checkpoint into one with " \
               "`vibe-edge convert`"
    return ModelFileError(message, hint=hint)


def _describe_foreign(head: bytes, size: int) -> str | None:
    if size == 0:
        return "an empty file (0 bytes)"
    if len(head) >= 10 and head[8:10] in (b'{"', b"{'"):
        # safetensors: an 8-byte little-endian header length, then the JSON header.
        return "a safetensors checkpoint"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<!--")):
        return "a web page (HTML), e.g. an error or login page saved instead of the model"
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer file, not the model itself"
    if text.startswith((b"{", b"[")):
        return "JSON text (a config or tokenizer file?)"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a PyTorch .bin/.pt checkpoint?)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (a PyTorch checkpoint?)"
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg", b"ggml", b"ggjt", b"ggmf"):
        return "a legacy GGML/GGJT model (the format before GGUF)"
    if not head.strip(b"\x00"):
        return "zeros (an unfinished, pre-allocated download?)"
    return None


def _truncated(path: Path, size: int, what: str, expected: int | None = None) -> ModelFileError:
    if expected is not None:
        detail = f"the tensor data needs {expected:,} bytes but the file has {size:,} " \
                 f"({expected - size:,} missing)"
    else:
        detail = f"it ends ({size:,} bytes) inside {what}"
    return ModelFileError(
        f"{path} is truncated: {detail}",
        hint="the file is incomplete (an interrupted download or conversion): download or "
        "convert it again",
    )


# -- the parser ------------------------------------------------------------------------------------

class _Cut(Exception):
    """The buffer ended before the item being read."""


class _BadFile(Exception):
    pass


class _Cursor:
    """Bounds-checked little-endian reads from the mapped file."""

    def __init__(self, buf: mmap.mmap, size: int):
        self.buf, self.size, self.pos = buf, size, 0

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Cut
        self.pos = start + n
        return start

    def scalar(self, code: str, n: int) -> Any:
        return struct.unpack_from("<" + code, self.buf, self.take(n))[0]

    def u32(self) -> int:
        return self.scalar("I", 4)

    def u64(self) -> int:
        return self.scalar("Q", 8)

    def raw_string(self) -> bytes:
        n = self.u64()
        start = self.take(n)
        return self.buf[start:start + n]

    def string(self) -> str:
        return self.raw_string().decode("utf-8", errors="replace")


def _parse(path: Path, size: int, mm: mmap.mmap, keep_array: KeepArray) -> GGUFFile:
    version = struct.unpack_from("<I", mm, 4)[0]
    # A big-endian file (s390x builds) has its version's bytes reversed; llama.cpp on a
    # little-endian machine cannot use it, so name the problem instead of "version 50331648".
    if version & 0xFFFF == 0 and version != 0:
        raise ModelFileError(f"{path} is a big-endian GGUF file",
                             hint="convert the model again on (or for) a little-endian machine")
    if version not in SUPPORTED_GGUF_VERSIONS:
        raise ModelFileError(
            f"{path} uses GGUF version {version}; this llama.cpp reads versions "
            f"{SUPPORTED_GGUF_VERSIONS[0]}-{SUPPORTED_GGUF_VERSIONS[-1]}",
            hint="re-convert the model with current tools (`vibe-edge convert`)"
            if version < SUPPORTED_GGUF_VERSIONS[0]
            else "upgrade vibe-edge / llama-cpp-python, or re-convert the model",
        )
    cur = _Cursor(mm, size)
    cur.pos = 8
    section = "the header"
    skipped: dict[str, int] = {}
    try:
        n_tensors, n_kv = cur.u64(), cur.u64()
        section = "the metadata"
        fields = _read_metadata(cur, n_kv, keep_array, skipped)
        section = "the tensor directory"
        directory = [_read_tensor_info(cur) for _ in range(n_tensors)]
    except _Cut:
        raise _truncated(path, size, section) from None
    except _BadFile as exc:
        raise ModelFileError(f"{path} is damaged: {exc} in {section}",
                             hint="download or convert the file again") from None

    alignment = fields.get(gguf.Keys.General.ALIGNMENT, gguf.GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 \
            or alignment & (alignment - 1):
        raise ModelFileError(f"{path} is damaged: general.alignment is {alignment!r}",
                             hint="download or convert the file again")
    data_offset = -(-cur.pos // alignment) * alignment

    tensors, data_end = [], data_offset
    for name, shape, ggml_type, offset in directory:
        kind, nbytes = _tensor_type(ggml_type, math.prod(shape))
        tensor = GGUFTensor(name, shape, kind, data_offset + offset, nbytes)
        # A type newer than the installed gguf tables: its size is unknown, but its start must
        # still lie inside the file.
        data_end = max(data_end, tensor.offset + (nbytes or 0))
        tensors.append(tensor)
    if data_end > size:
        raise _truncated(path, size, "the tensor data", expected=data_end)
    return GGUFFile(path, size, version, fields, tensors, data_offset, skipped)


def _read_metadata(cur: _Cursor, n_kv: int, keep_array: KeepArray,
                   skipped: dict[str, int]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        vtype = cur.u32()
        if vtype == _VT.ARRAY:
            etype, count = cur.u32(), cur.u64()
            keep = keep_array(key, count)
            values = _read_array(cur, etype, count, keep=keep, depth=1)
            if keep:
                fields[key] = values
            else:
                skipped[key] = count
        else:
            fields[key] = _read_value(cur, vtype)
    return fields


def _read_value(cur: _Cursor, vtype: int) -> Any:
    if vtype == _VT.STRING:
        return cur.string()
    try:
        code, n = _SCALARS[vtype]
    except KeyError:
        raise _BadFile(f"unknown metadata value type {vtype}") from None
    return cur.scalar(code, n)


def _read_array(cur: _Cursor, etype: int, count: int, *, keep: bool, depth: int) -> list[Any] | None:
    if etype in _SCALARS:
        code, n = _SCALARS[etype]
        start = cur.take(n * count)  # fixed-size elements: bounds-checked, skipped in one step
        if not keep:
            return None
        return list(struct.unpack_from(f"<{count}{code}", cur.buf, start))
    if etype == _VT.STRING:
        if not keep:
            for _ in range(count):
                cur.raw_string()
            return None
        return [cur.raw_string().decode("utf-8", errors="replace") for _ in range(count)]
    if etype == _VT.ARRAY:
        if depth >= MAX_ARRAY_NESTING:
            raise _BadFile(f"metadata arrays nested more than {MAX_ARRAY_NESTING} deep")
        items = [_read_array(cur, cur.u32(), cur.u64(), keep=keep, depth=depth + 1)
                 for _ in range(count)]
        return items if keep else None
    raise _BadFile(f"unknown metadata array element type {etype}")


def _read_tensor_info(cur: _Cursor) -> tuple[str, tuple[int, ...], int, int]:
    name = cur.string()
    n_dims = cur.u32()
    if n_dims > MAX_TENSOR_DIMS:
        raise _BadFile(f"tensor {name!r} claims {n_dims} dimensions")
    shape = tuple(cur.u64() for _ in range(n_dims))
    return name, shape, cur.u32(), cur.u64()


def _tensor_type(ggml_type: int, n_elements: int) -> tuple[gguf.GGMLQuantizationType | int, int | None]:
    try:
        kind = gguf.GGMLQuantizationType(ggml_type)
        block, type_size = gguf.GGML_QUANT_SIZES[kind]
    except (ValueError, KeyError):
        return ggml_type, None
    return kind, n_elements // block * type_size
