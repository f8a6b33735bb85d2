"""A fast GGUF header reader: metadata and tensor infos without decoding tensor data.

gguf-py's GGUFReader builds a numpy view per array element, which takes many seconds on a 152k
token vocabulary; `models info`, `pull` and the tests only need the values. This parser walks
the header once with struct.unpack_from over a memory map (well under a second).
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from vibe_edge.errors import ModelFileError

__all__ = ["GGUFInfo", "GGUFTensor", "read_gguf"]

GGUF_MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]  # ggml order (fastest dimension first), as GGUF stores it
    type: GGMLQuantizationType
    offset: int  # absolute offset in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass
class GGUFInfo:
    path: Path
    version: int
    fields: dict[str, Any]
    tensors: list[GGUFTensor]

    def tensor(self, name: str) -> GGUFTensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def raw(self, name: str) -> np.ndarray:
        """A tensor's bytes (read-only memmap)."""
        t = self.tensor(name)
        return np.memmap(self.path, dtype=np.uint8, mode="r", offset=t.offset, shape=(t.nbytes,))

    @property
    def architecture(self) -> str | None:
        return self.fields.get("general.architecture")


class _Cursor:
    def __init__(self, buf: Any):
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        return bytes(raw).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            sub, n = self.unpack("<I"), self.unpack("<Q")
            if sub in _NUMPY:
                arr = np.frombuffer(self.buf, dtype=_NUMPY[sub], count=n, offset=self.pos)
                self.pos += arr.nbytes
                return arr.tolist()
            return [self.value(sub) for _ in range(n)]
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf(path: Path) -> GGUFInfo:
    """Parse a GGUF's header; ModelFileError when it is not a (complete) GGUF file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != GGUF_MAGIC:
                raise ModelFileError(f"{path.name} is not a GGUF file (bad magic)",
                                     hint="the file is damaged or not a model; download it again")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from exc
    try:
        cur = _Cursor(mm)
        cur.pos = 4
        version = cur.unpack("<I")
        n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
        fields: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            fields[key] = cur.value(cur.unpack("<I"))
        infos = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.unpack("<I")
            shape = tuple(cur.unpack("<Q") for _ in range(n_dims))
            ttype = GGMLQuantizationType(cur.unpack("<I"))
            infos.append((name, shape, ttype, cur.unpack("<Q")))
        align = int(fields.get("general.alignment", 32))
        data_start = cur.pos + (-cur.pos % align)
        size = len(mm)
    except (struct.error, ValueError, IndexError) as exc:
        raise ModelFileError(f"{path.name} has a damaged or truncated GGUF header ({exc})",
                             hint="download or convert it again") from exc
    finally:
        mm.close()
    tensors = []
    for name, shape, ttype, offset in infos:
        block, type_size = GGML_QUANT_SIZES[ttype]
        nbytes = math.prod(shape) // block * type_size
        t = GGUFTensor(name, shape, ttype, data_start + offset, nbytes)
        if t.offset + nbytes > size:
            raise ModelFileError(f"{path.name} is truncated: tensor {name} ends past the end of the file",
                                 hint="the download or conversion was cut short; fetch it again")
        tensors.append(t)
    return GGUFInfo(path, version, fields, tensors)
