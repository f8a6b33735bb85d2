"""The one GGUF reader: what it keeps, what it skips, and the limits that stop a hostile header
(inspect_gguf's tests in test_modelfile.py cover truncation, foreign files and the facts)."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from vibe_edge.errors import ModelFileError
from vibe_edge.gguf_reader import (
    MAX_ARRAY_NESTING,
    SMALL_ARRAY_ITEMS,
    keep_small_arrays,
    read_gguf,
)

VT = gguf.GGUFValueType


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _file(path: Path, kv: list[bytes]) -> Path:
    """A GGUF with metadata and no tensors, padded to the data alignment as writers do."""
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv)
    path.write_bytes(body + b"\0" * (-len(body) % 32))
    return path


def _nested_array(depth: int) -> bytes:
    """An array of arrays ... of one uint8, `depth` levels deep."""
    inner = struct.pack("<IQ", VT.UINT8, 1) + b"\x07"
    for _ in range(depth - 1):
        inner = struct.pack("<IQ", VT.ARRAY, 1) + inner
    return inner


def test_nested_arrays_are_read_up_to_the_limit(tmp_path):
    ok = _file(tmp_path / "ok.gguf", [_string("general.architecture") + struct.pack("<I", VT.STRING)
                                      + _string("qwen2"),
                                      _string("x.nested") + struct.pack("<I", VT.ARRAY)
                                      + _nested_array(2)])
    assert read_gguf(ok).fields["x.nested"] == [[7]]


def test_arrays_nested_past_the_limit_are_a_damaged_file_not_a_recursion_error(tmp_path):
    deep = _file(tmp_path / "deep.gguf", [_string("x.nested") + struct.pack("<I", VT.ARRAY)
                                          + _nested_array(MAX_ARRAY_NESTING + 1)])
    with pytest.raises(ModelFileError, match="nested"):
        read_gguf(deep)
    hostile = _file(tmp_path / "hostile.gguf", [_string("x.nested") + struct.pack("<I", VT.ARRAY)
                                                + _nested_array(5000)])
    with pytest.raises(ModelFileError, match="damaged"):
        read_gguf(hostile)


def test_a_huge_array_count_is_truncation_not_an_allocation(tmp_path):
    f = _file(tmp_path / "count.gguf", [_string("x.big") + struct.pack("<IIQ", VT.ARRAY, VT.UINT32, 2**60)])
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf(f)


def test_big_arrays_can_be_skipped_and_are_counted(tmp_path):
    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_token_list([f"t{i}" for i in range(SMALL_ARRAY_ITEMS + 5)])
    w.add_token_merges([f"a b{i}" for i in range(SMALL_ARRAY_ITEMS + 5)])
    w.add_array("x.small", [1, 2, 3])
    w.add_tensor("w", np.zeros((2, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    full = read_gguf(path)
    assert len(full.fields[gguf.Keys.Tokenizer.MERGES]) == SMALL_ARRAY_ITEMS + 5
    lean = read_gguf(path, keep_array=keep_small_arrays)
    assert gguf.Keys.Tokenizer.MERGES not in lean.fields
    assert lean.skipped_arrays == {gguf.Keys.Tokenizer.MERGES: SMALL_ARRAY_ITEMS + 5}
    assert len(lean.fields[gguf.Keys.Tokenizer.LIST]) == SMALL_ARRAY_ITEMS + 5  # kept: think tokens
    assert lean.fields["x.small"] == [1, 2, 3]
    assert lean.tensors == full.tensors and lean.data_offset == full.data_offset
    assert np.asarray(lean.raw("w")).nbytes == 64


def test_a_tensor_type_newer_than_the_tables_is_kept_with_an_unknown_size(tmp_path):
    kv = [_string("general.architecture") + struct.pack("<I", VT.STRING) + _string("qwen2")]
    tensor = _string("w") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<I", 9999) \
        + struct.pack("<Q", 0)
    body = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + b"".join(kv) + tensor
    path = tmp_path / "new.gguf"
    path.write_bytes(body + b"\0" * (-len(body) % 32) + b"\0" * 16)
    [t] = read_gguf(path).tensors
    assert t.type == 9999 and t.nbytes is None and t.shape == (4,)
