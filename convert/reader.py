"""Lazy safetensors reading: our own header parser plus numpy memmaps.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON describing each
tensor (dtype, shape, [begin, end) byte offsets relative to the data section), then the data.
We parse and validate the header ourselves so a damaged file gives a precise message, and map
tensor bytes with numpy.memmap so reading one tensor (or a few rows of it) touches only those
pages: peak memory stays near one chunk, not one model.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from vibe_edge.convert.errors import CheckpointError

__all__ = [
    "DTYPES",
    "INDEX_FILE",
    "SINGLE_FILE",
    "Checkpoint",
    "TensorRef",
    "open_checkpoint",
    "read_safetensors_header",
]

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# A header larger than this is certainly corrupt (real headers of 1.5B models are ~30 KB).
MAX_HEADER_BYTES = 100 * 1024 * 1024

# safetensors dtype -> (numpy storage dtype, bytes per element). bf16 has no numpy dtype: we keep
# its raw 16-bit pattern as uint16 and widen it to float32 by shifting (exact).
DTYPES: dict[str, tuple[np.dtype, int]] = {
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
    "F64": (np.dtype("<f8"), 8),
    "I64": (np.dtype("<i8"), 8),
    "I32": (np.dtype("<i4"), 4),
    "I16": (np.dtype("<i2"), 2),
    "I8": (np.dtype("i1"), 1),
    "U8": (np.dtype("u1"), 1),
    "BOOL": (np.dtype("?"), 1),
}
FLOAT_DTYPES = ("F32", "F16", "BF16")


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives; nothing is read until `rows()` or `array()` is called."""

    name: str
    file: Path
    dtype: str  # safetensors dtype name
    shape: tuple[int, ...]
    offset: int  # absolute byte offset in `file`
    nbytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def n_rows(self) -> int:
        return self.shape[0] if self.shape else 1

    def _memmap(self) -> np.ndarray:
        storage, _ = DTYPES[self.dtype]
        if self.n_elements == 0:
            return np.zeros(self.shape, dtype=storage)
        return np.memmap(self.file, dtype=storage, mode="r", offset=self.offset,
                         shape=self.shape if self.shape else (1,))

    def raw(self) -> np.ndarray:
        """The stored values as a read-only memmap (bf16 as uint16 bit patterns)."""
        return self._memmap()

    def rows_f32(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) widened to float32; bf16 and f16 widen exactly."""
        raw = self._memmap()
        if not self.shape:
            raw = raw.reshape(())
            part = raw
        else:
            part = raw[start:stop]
        if self.dtype == "BF16":
            # bf16 is the top half of an f32: widen and shift in one pass out of the map.
            return np.left_shift(np.asarray(part), np.uint32(16), dtype=np.uint32).view(np.float32)
        return np.asarray(part, dtype=np.float32)

    def array_f32(self) -> np.ndarray:
        return self.rows_f32(0, self.n_rows)


def read_safetensors_header(path: Path) -> dict[str, TensorRef]:
    """Parse and validate one .safetensors file's header; raise CheckpointError when damaged."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path.name} is not a safetensors file: it is only {size} bytes",
                                      hint="re-download the checkpoint")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > MAX_HEADER_BYTES or 8 + n > size:
                raise CheckpointError(
                    f"{path.name} has a corrupt safetensors header (declared header size {n} bytes, "
                    f"file size {size} bytes)",
                    hint="the file is truncated or not safetensors; re-download it")
            blob = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(blob.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path.name} has a corrupt safetensors header ({exc})",
                              hint="the file is damaged; re-download it") from exc
    data_start = 8 + n
    data_size = size - data_start
    refs: dict[str, TensorRef] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = info["dtype"]
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path.name}: malformed header entry for tensor {name!r}",
                                  hint="the file is damaged; re-download it") from exc
        if dtype not in DTYPES:
            raise CheckpointError(f"{path.name}: tensor {name!r} has dtype {dtype}, which vibe-edge "
                                  f"does not read (supported: {', '.join(FLOAT_DTYPES)})")
        expected = math.prod(shape) * DTYPES[dtype][1]
        if begin < 0 or end < begin or end - begin != expected or end > data_size:
            raise CheckpointError(
                f"{path.name}: tensor {name!r} ({dtype}, shape {list(shape)}) has byte range "
                f"[{begin}, {end}) but needs {expected} bytes within a {data_size}-byte data section",
                hint="the file is truncated or damaged; re-download it")
        refs[name] = TensorRef(name, path, dtype, shape, data_start + begin, end - begin)
    # Name order within a file, as llama.cpp's converter uses: the GGUF's tensor order matches.
    return dict(sorted(refs.items()))


@dataclass
class Checkpoint:
    """All tensors of a (possibly sharded) safetensors checkpoint, by name, in file order."""

    folder: Path
    tensors: dict[str, TensorRef]
    files: list[Path]

    @property
    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def dominant_float_dtype(self) -> str | None:
        """The dtype of the first 2-D float tensor (what `--outtype auto` follows)."""
        for ref in self.tensors.values():
            if len(ref.shape) >= 2 and ref.dtype in FLOAT_DTYPES:
                return ref.dtype
        return None


def _inside_folder(name: object) -> bool:
    """A shard name from the index stays inside the checkpoint folder: relative, no '..'.

    Checked on the name, not the resolved path: a hub snapshot's files are symlinks into the
    cache's blob store, which is outside the snapshot folder by design."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name not in (".",)


def open_checkpoint(folder: Path) -> Checkpoint:
    """Index the checkpoint in `folder`: model.safetensors, or the shards an index.json names.

    Missing shards, tensors the index promises but no shard holds, and damaged headers are all
    reported before any output is written.
    """
    folder = Path(folder)
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            weight_map = index["weight_map"]
            if not isinstance(weight_map, dict) or not weight_map:
                raise ValueError("empty weight_map")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index_path.name} is unreadable ({exc})",
                                  hint="re-download the checkpoint's index file") from exc
        outside = [s for s in weight_map.values() if not _inside_folder(s)]
        if outside:
            raise CheckpointError(
                f"{index_path.name} names shard {outside[0]!r}, which is not a file inside the "
                "checkpoint folder; refusing to read it",
                hint="the index is damaged or hostile: shard names must be file names in the "
                     "folder (e.g. model-00001-of-00002.safetensors); re-download the checkpoint")
        shard_names = sorted(set(weight_map.values()))
        missing = [s for s in shard_names if not (folder / s).is_file()]
        if missing:
            raise CheckpointError(
                f"missing shard(s) {', '.join(missing)} listed in {index_path.name}",
                hint="the download is incomplete: fetch the missing files (or re-run the download)")
        files = [folder / s for s in shard_names]
    else:
        single = folder / SINGLE_FILE
        files = [single] if single.is_file() else sorted(folder.glob("model-*-of-*.safetensors"))
        weight_map = None
        if not files:
            other = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
            raise CheckpointError(
                f"no safetensors weights in {folder}"
                + (f" (found {', '.join(other[:3])}: PyTorch pickles are not read, for safety)" if other else ""),
                hint="vibe-edge converts model.safetensors or sharded model-*-of-*.safetensors with an index")

    tensors: dict[str, TensorRef] = {}
    for file in files:
        for name, ref in read_safetensors_header(file).items():
            if name in tensors:
                raise CheckpointError(f"tensor {name!r} appears in both {tensors[name].file.name} and {file.name}")
            tensors[name] = ref
    if weight_map is not None:
        absent = sorted(set(weight_map) - set(tensors))
        if absent:
            shards = sorted({weight_map[n] for n in absent})
            raise CheckpointError(
                f"{len(absent)} tensor(s) listed in {INDEX_FILE} are not in the shards "
                f"(e.g. {absent[0]!r}, expected in {', '.join(shards)})",
                hint="a shard is incomplete or from another checkpoint; re-download it")
    return Checkpoint(folder, tensors, files)
