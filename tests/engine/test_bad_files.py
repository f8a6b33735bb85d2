"""Bad model files get a clear ModelFileError from the engine, never a crash."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from vibe_edge.engine import Engine, EngineConfig
from vibe_edge.errors import ModelFileError


def _open(path):
    return Engine(EngineConfig(model_path=path, n_slots=1, ctx_per_slot=256, warmup=False))


def test_not_a_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(ModelFileError) as info:
        _open(path)
    assert "GGUF" in str(info.value)


def test_safetensors_is_pointed_at_convert(tmp_path):
    path = tmp_path / "model.safetensors"
    header = b'{"w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0")
    with pytest.raises(ModelFileError) as info:
        _open(path)
    assert "convert" in str(info.value)


def test_truncated_gguf(tmp_path, demo_model):
    data = demo_model.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as info:
        _open(path)
    assert "truncated" in str(info.value).lower()


def test_architecture_this_llama_cpp_cannot_run(tmp_path):
    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "alienformer")
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_head_count(1)
    writer.add_context_length(64)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b"])
    writer.add_tensor("token_embd.weight", np.zeros((2, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelFileError) as info:
        _open(path)
    message = str(info.value)
    assert "alienformer" in message and "llama.cpp" in message


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError):
        _open(tmp_path / "nothing.gguf")
