"""convert/writer.py leans on gguf's writer (its fast arrays override a private method, and the
tensor data is appended after gguf has written the header): these checks fail when a gguf
release changes what that relies on, before a user's file comes out wrong."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from vibe_edge.convert.writer import FAST_ARRAY_MIN_ITEMS, _FastArrayWriter
from vibe_edge.gguf_reader import read_gguf

N = FAST_ARRAY_MIN_ITEMS + 7  # above the fast path's threshold


def _write(writer_cls: type[gguf.GGUFWriter], path: Path) -> bytes:
    w = writer_cls(path, "qwen2")
    w.add_block_count(2)
    w.add_token_list([f"tok{i} é" for i in range(N)])
    w.add_token_types([i % 5 for i in range(N)])
    w.add_array("test.negative", [-(2**31)] + list(range(N)))
    w.add_array("test.small", [1, 2, 3])
    w.add_array("test.floats", [0.5] * N)
    w.add_tensor("t", np.arange(12, dtype=np.float32).reshape(3, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def test_fast_arrays_write_the_stock_writers_bytes(tmp_path):
    assert _write(_FastArrayWriter, tmp_path / "fast.gguf") == _write(gguf.GGUFWriter, tmp_path / "stock.gguf")


def test_a_converted_file_reads_back_the_same_with_ggufs_own_reader(tiny_tied_gguf):
    ours = read_gguf(tiny_tied_gguf)
    reference = gguf.GGUFReader(tiny_tied_gguf)
    assert reference.data_offset == ours.data_offset
    tokens = reference.fields[gguf.Keys.Tokenizer.LIST]
    assert [bytes(tokens.parts[i]).decode() for i in tokens.data[:5]] == ours.fields[gguf.Keys.Tokenizer.LIST][:5]
    assert len(tokens.data) == len(ours.fields[gguf.Keys.Tokenizer.LIST])
    ref_tensors = {t.name: t for t in reference.tensors}
    assert list(ref_tensors) == [t.name for t in ours.tensors]
    for t in ours.tensors:
        ref = ref_tensors[t.name]
        assert ref.data_offset == t.offset and ref.n_bytes == t.nbytes, t.name
        assert np.array_equal(np.asarray(ref.data).view(np.uint8).ravel(), np.asarray(ours.raw(t.name))), t.name
