"""Look inside a GGUF file before llama.cpp loads it.

llama.cpp answers a bad file with a terse log line, a NULL model or an outright crash (a truncated
file is mmapped and read past its end). Reading the header ourselves first turns those into a
ModelFileError that says what is wrong and what to do, and gives the hardware plan the model's
shape (layers, KV heads, head size) without loading anything.

The parser is our own rather than gguf.GGUFReader because the reader builds numpy views of every
metadata array (slow on a 150k-token vocabulary) and reports a cut-off file as a bare numpy or
struct error. Only the header, the metadata and the tensor directory are read, never tensor data,
so a 3 GB file is inspected in well under a second. The `gguf` package supplies the tables
(quantization block sizes, file-type names), so new quant types follow package upgrades.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gguf

from vibe_edge.errors import ModelFileError

__all__ = [
    "GGUF_MAGIC",
    "SUPPORTED_GGUF_VERSIONS",
    "SUPPORTED_ARCHITECTURES",
    "KV_BYTES_PER_ELEMENT",
    "GGUFFacts",
    "inspect_gguf",
    "quant_name",
]

GGUF_MAGIC = b"GGUF"
# llama.cpp reads versions 2 and 3; version 1 (2023) used 32-bit counts and is refused by it.
SUPPORTED_GGUF_VERSIONS = (2, 3)
# Not a whitelist (llama.cpp decides what loads): the architectures vibe-edge is tested with, so
# anything else gets a "should work, untested" warning instead of silence.
SUPPORTED_ARCHITECTURES = frozenset({"qwen2", "llama"})
# Bytes per cached K/V element for llama.cpp's cache types: q8_0 stores 32 values in 34 bytes
# (32 int8 + an f16 scale), q4_0 32 values in 18 bytes.
KV_BYTES_PER_ELEMENT: dict[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

_DEFAULT_ALIGNMENT = 32
_THINK_OPEN, _THINK_CLOSE = b"<think>", b"</think>"
# Scalar metadata value types: GGUF type id -> (struct code, size).
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
    6: ("f", 4), 7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8),
}
_STRING, _ARRAY = 8, 9
# Metadata we keep whole; every other array is skipped without building Python objects.
_TOKENS_KEY = "tokenizer.ggml.tokens"


@dataclass(frozen=True)
class GGUFFacts:
    """What vibe-edge needs to know about a model file, read from its header."""

    path: Path
    size_bytes: int
    version: int
    architecture: str
    name: str                  # general.name, else the file name without .gguf
    file_type: int | None      # general.file_type (a gguf.LlamaFileType value)
    quant: str | None          # "Q4_K_M", "Q8_0", "F16"...; guessed from tensor types if unset
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx_train: int | None
    vocab_size: int | None
    chat_template: str | None
    has_think_tokens: bool     # the vocabulary has both <think> and </think>
    n_tensors: int
    n_params: int              # sum of tensor element counts
    tensor_data_bytes: int     # what the weights take in memory once loaded
    # The longest token text in bytes: no prompt longer than ctx x this many characters can fit
    # a context of ctx tokens (the engine refuses such a prompt before tokenizing it).
    max_token_bytes: int | None = None

    def kv_bytes_per_token(self, kv_type: str = "f16") -> int:
        """KV-cache bytes one token takes in one sequence: layers x (K and V) x kv heads x dims."""
        try:
            per_element = KV_BYTES_PER_ELEMENT[kv_type]
        except KeyError:
            raise ValueError(f"kv_type must be one of {sorted(KV_BYTES_PER_ELEMENT)}, "
                             f"got {kv_type!r}") from None
        return int(self.n_layer * 2 * self.n_head_kv * self.head_dim * per_element)

    @property
    def tested_architecture(self) -> bool:
        return self.architecture in SUPPORTED_ARCHITECTURES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def quant_name(file_type: int | None) -> str | None:
    """gguf.LlamaFileType value -> the usual short name ("MOSTLY_Q4_K_M" -> "Q4_K_M")."""
    if file_type is None:
        return None
    try:
        name = gguf.LlamaFileType(file_type).name
    except ValueError:
        return None
    if name == "GUESSED":
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def inspect_gguf(path: str | Path) -> GGUFFacts:
    """Read a GGUF file's header and metadata; raise ModelFileError if llama.cpp could not use it."""
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
            if size < 24:
                raise _truncated(path, size, "the fixed header (24 bytes)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _parse(path, size, mm)
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


class _Cursor:
    """Bounds-checked little/big-endian reads from the mapped file."""

    def __init__(self, buf: mmap.mmap, size: int, endian: str):
        self.buf, self.size, self.end, self.pos = buf, size, endian, 0

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Cut
        self.pos = start + n
        return start

    def scalar(self, code: str, n: int) -> Any:
        return struct.unpack_from(self.end + code, self.buf, self.take(n))[0]

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


def _parse(path: Path, size: int, mm: mmap.mmap) -> GGUFFacts:
    version_le = struct.unpack_from("<I", mm, 4)[0]
    # A big-endian file (s390x builds) has its version's bytes reversed; llama.cpp on a
    # little-endian machine cannot use it, so name the problem instead of "version 50331648".
    if version_le & 0xFFFF == 0 and version_le != 0:
        raise ModelFileError(f"{path} is a big-endian GGUF file",
                             hint="convert the model again on (or for) a little-endian machine")
    if version_le not in SUPPORTED_GGUF_VERSIONS:
        raise ModelFileError(
            f"{path} uses GGUF version {version_le}; this llama.cpp reads versions "
            f"{SUPPORTED_GGUF_VERSIONS[0]}-{SUPPORTED_GGUF_VERSIONS[-1]}",
            hint="re-convert the model with current tools (`vibe-edge convert`)"
            if version_le < SUPPORTED_GGUF_VERSIONS[0]
            else "upgrade vibe-edge / llama-cpp-python, or re-convert the model",
        )
    cur = _Cursor(mm, size, "<")
    cur.pos = 8
    section = "the header"
    try:
        n_tensors, n_kv = cur.u64(), cur.u64()
        section = "the metadata"
        meta, tokens = _read_metadata(cur, n_kv)
        section = "the tensor directory"
        tensors = [_read_tensor_info(cur) for _ in range(n_tensors)]
    except _Cut:
        raise _truncated(path, size, section) from None
    except _BadFile as exc:
        raise ModelFileError(f"{path} is damaged: {exc} in {section}",
                             hint="download or convert the file again") from None

    alignment = meta.get("general.alignment", _DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelFileError(f"{path} is damaged: general.alignment is {alignment!r}",
                             hint="download or convert the file again")
    data_start = -(-cur.pos // alignment) * alignment

    data_end, n_params, data_bytes, bytes_by_type = data_start, 0, 0, {}
    for _name, n_elements, ggml_type, offset in tensors:
        n_params += n_elements
        nbytes = _tensor_nbytes(n_elements, ggml_type)
        # A type newer than the installed gguf tables: its size is unknown, but its start must
        # still lie inside the file.
        end = data_start + offset + (nbytes or 0)
        data_end = max(data_end, end)
        if nbytes:
            data_bytes += nbytes
            bytes_by_type[ggml_type] = bytes_by_type.get(ggml_type, 0) + nbytes
    if data_end > size:
        raise _truncated(path, size, "the tensor data", expected=data_end)

    return _facts(path, size, version_le, meta, tokens, len(tensors), n_params, data_bytes,
                  bytes_by_type)


class _BadFile(Exception):
    pass


def _read_metadata(cur: _Cursor, n_kv: int) -> tuple[dict[str, Any], tuple[int, bool]]:
    """Return the scalar/string metadata, plus (token count, has think tokens)."""
    meta: dict[str, Any] = {}
    tokens = (-1, False, None)
    for _ in range(n_kv):
        key = cur.string()
        vtype = cur.u32()
        if vtype == _ARRAY:
            etype, count = cur.u32(), cur.u64()
            if key == _TOKENS_KEY and etype == _STRING:
                tokens = (count, *_scan_tokens(cur, count))
            else:
                small = _read_array(cur, etype, count, keep=count <= 1024)
                if small is not None:
                    meta[key] = small
        else:
            meta[key] = _read_value(cur, vtype)
    return meta, tokens


def _read_value(cur: _Cursor, vtype: int) -> Any:
    if vtype == _STRING:
        return cur.string()
    try:
        code, n = _SCALARS[vtype]
    except KeyError:
        raise _BadFile(f"unknown metadata value type {vtype}") from None
    return cur.scalar(code, n)


def _read_array(cur: _Cursor, etype: int, count: int, *, keep: bool) -> list[Any] | None:
    if etype in _SCALARS:
        code, n = _SCALARS[etype]
        start = cur.take(n * count)  # fixed-size elements: skip them in one step
        if not keep:
            return None
        return list(struct.unpack_from(f"{cur.end}{count}{code}", cur.buf, start))
    if etype == _STRING:
        values = []
        for _ in range(count):
            s = cur.raw_string()
            if keep:
                values.append(s.decode("utf-8", errors="replace"))
        return values if keep else None
    if etype == _ARRAY:
        for _ in range(count):
            _read_array(cur, cur.u32(), cur.u64(), keep=False)
        return None
    raise _BadFile(f"unknown metadata array element type {etype}")


def _scan_tokens(cur: _Cursor, count: int) -> tuple[bool, int]:
    """(has <think> and </think>, longest token text in bytes)."""
    seen_open = seen_close = False
    longest = 0
    for _ in range(count):
        tok = cur.raw_string()
        longest = max(longest, len(tok))
        if len(tok) in (7, 8):
            seen_open = seen_open or tok == _THINK_OPEN
            seen_close = seen_close or tok == _THINK_CLOSE
    return seen_open and seen_close, longest


def _read_tensor_info(cur: _Cursor) -> tuple[str, int, int, int]:
    name = cur.string()
    n_dims = cur.u32()
    if n_dims > 8:  # ggml has at most 4 dimensions; a huge count means garbage, not a tensor
        raise _BadFile(f"tensor {name!r} claims {n_dims} dimensions")
    n_elements = 1
    for _ in range(n_dims):
        n_elements *= cur.u64()
    return name, n_elements, cur.u32(), cur.u64()


def _tensor_nbytes(n_elements: int, ggml_type: int) -> int | None:
    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    return n_elements // block * type_size


def _facts(path: Path, size: int, version: int, meta: dict[str, Any], tokens: tuple[int, bool, int | None],
           n_tensors: int, n_params: int, data_bytes: int, bytes_by_type: dict[int, int]) -> GGUFFacts:
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelFileError(
            f"{path} has no general.architecture key, so llama.cpp cannot tell what model it is",
            hint="the converter that wrote it is broken or too old: convert the model again",
        )

    def need(key: str, pick: Callable[[Any], int] = int) -> int:
        value = meta.get(f"{arch}.{key}")
        if value is None:
            raise ModelFileError(
                f"{path} ({arch}) lacks {arch}.{key}; it is not a language model vibe-edge can run "
                "or was written by a broken converter",
                hint="convert the model again with `vibe-edge convert`",
            )
        return pick(value)

    # Some architectures give per-layer head counts as arrays; the largest bounds the KV size.
    per_layer = lambda v: int(max(v)) if isinstance(v, list) else int(v)  # noqa: E731
    n_layer = need("block_count")
    n_embd = need("embedding_length")
    n_head = need("attention.head_count", per_layer)
    kv = meta.get(f"{arch}.attention.head_count_kv")
    n_head_kv = per_layer(kv) if kv is not None else n_head
    key_length = meta.get(f"{arch}.attention.key_length")
    head_dim = int(key_length) if key_length else (n_embd // n_head if n_head else 0)
    ctx = meta.get(f"{arch}.context_length")

    file_type = meta.get("general.file_type")
    file_type = int(file_type) if isinstance(file_type, int) else None
    quant = quant_name(file_type)
    if quant is None and bytes_by_type:
        # No (or an unknown) file type: name the type holding most of the bytes, as llama.cpp does.
        dominant = max(bytes_by_type, key=bytes_by_type.__getitem__)
        quant = gguf.GGMLQuantizationType(dominant).name

    n_tokens, thinks, longest_token = tokens
    vocab = n_tokens if n_tokens >= 0 else meta.get(f"{arch}.vocab_size")
    name = meta.get("general.name")
    template = meta.get("tokenizer.chat_template")
    return GGUFFacts(
        path=path, size_bytes=size, version=version, architecture=arch,
        name=name if isinstance(name, str) and name.strip() else path.name.removesuffix(".gguf"),
        file_type=file_type, quant=quant, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
        n_head_kv=n_head_kv, head_dim=head_dim,
        n_ctx_train=int(ctx) if isinstance(ctx, int) and ctx > 0 else None,
        vocab_size=int(vocab) if isinstance(vocab, int) else None,
        chat_template=template if isinstance(template, str) and template else None,
        has_think_tokens=thinks, n_tensors=n_tensors, n_params=n_params,
        tensor_data_bytes=data_bytes, max_token_bytes=longest_token or None,
    )
