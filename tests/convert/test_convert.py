"""Conversion of tiny Qwen2 checkpoints (real tokenizer): metadata, tensor bytes, llama.cpp load."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from vibe_edge.convert.core import convert_folder
from vibe_edge.gguf_reader import read_gguf
from vibe_edge.convert.reader import open_checkpoint
from vibe_edge.convert.spec import permute_qk
from vibe_edge.convert.synth import THINK_TOKENS
from vibe_edge.convert.tokenizer import KNOWN_PRE_TOKENIZERS, check_hash, load_hf_tokenizer
from vibe_edge.convert.writer import f32_to_bf16_bits


def _fields(path):
    info = read_gguf(path)
    return info.fields, info


def test_metadata_matches_llama_cpp_keys(tiny_tied_gguf):
    meta, reader = _fields(tiny_tied_gguf)
    # The keys and values llama.cpp's convert_hf_to_gguf.py writes for a Qwen2 checkpoint.
    expected = {
        "general.architecture": "qwen2",
        "general.type": "model",
        "qwen2.block_count": 2,
        "qwen2.context_length": 4096,
        "qwen2.embedding_length": 256,
        "qwen2.feed_forward_length": 512,
        "qwen2.attention.head_count": 4,
        "qwen2.attention.head_count_kv": 2,
        "qwen2.rope.freq_base": 10000.0,
        "general.file_type": int(gguf.LlamaFileType.MOSTLY_BF16),
        "general.quantization_version": gguf.GGML_QUANT_VERSION,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.bos_token_id": 151643,
        "tokenizer.ggml.eos_token_id": 151643,
        "tokenizer.ggml.add_bos_token": False,
    }
    for key, value in expected.items():
        assert meta[key] == value, key
    assert meta["qwen2.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    # generation_config.json sampling defaults
    assert meta["general.sampling.temp"] == pytest.approx(0.6)
    assert meta["general.sampling.top_p"] == pytest.approx(0.95)
    assert "Please reason step by step" in meta["tokenizer.chat_template"]
    assert meta["general.name"]
    assert meta["general.size_label"]
    # tokenizer layout: every embedding row has a token; padding rows are UNUSED
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == 151936
    assert tokens[151644] == "<|im_start|>" and types[151644] == gguf.TokenType.CONTROL
    assert tokens[151665:151667] == list(THINK_TOKENS)
    assert types[151665] == types[151666] == gguf.TokenType.USER_DEFINED
    assert tokens[151700] == "[PAD151700]" and types[151700] == gguf.TokenType.UNUSED
    assert types[100] == gguf.TokenType.NORMAL
    assert len(meta["tokenizer.ggml.merges"]) == 151387


def test_tensor_names_types_and_bytes(tiny_tied, tiny_tied_gguf):
    _, info = _fields(tiny_tied_gguf)
    tensors = {t.name: t for t in info.tensors}
    assert "output.weight" not in tensors  # tied: llama.cpp reuses token_embd
    assert len(tensors) == 2 + 2 * 12
    ckpt = open_checkpoint(tiny_tied)
    for name, t in tensors.items():
        if name.endswith(("norm.weight", ".bias")):
            assert t.type == gguf.GGMLQuantizationType.F32, name
        else:
            assert t.type == gguf.GGMLQuantizationType.BF16, name
    # bf16 -> bf16 is bit-exact; the GGUF's shape is the HF shape reversed.
    emb = tensors["token_embd.weight"]
    src = ckpt.tensors["model.embed_tokens.weight"]
    assert list(emb.shape) == list(reversed(src.shape))
    assert np.array_equal(info.raw("token_embd.weight").view(np.uint16).reshape(src.shape), np.asarray(src.raw()))
    bias = ckpt.tensors["model.layers.1.self_attn.k_proj.bias"].array_f32()
    assert np.array_equal(info.raw("blk.1.attn_k.bias").view(np.float32), bias)


def test_untied_f16_and_outtypes(tiny_untied, tmp_path):
    out = tmp_path / "u.gguf"
    result = convert_folder(tiny_untied, out)  # auto: f16 checkpoint -> f16 file
    assert result.outtype == "f16"
    meta, info = _fields(out)
    assert info.tensor("output.weight").type == gguf.GGMLQuantizationType.F16
    src = open_checkpoint(tiny_untied).tensors["lm_head.weight"]
    assert np.array_equal(info.raw("output.weight").view(np.float16).reshape(src.shape), np.asarray(src.raw()))
    out32 = tmp_path / "u32.gguf"
    convert_folder(tiny_untied, out32, outtype="f32")
    meta32, i32 = _fields(out32)
    t32 = {t.name: t for t in i32.tensors}
    assert t32["blk.0.ffn_up.weight"].type == gguf.GGMLQuantizationType.F32
    assert meta32["general.file_type"] == int(gguf.LlamaFileType.ALL_F32)
    assert "output.weight" in t32


def test_bf16_rounding_matches_gguf_py():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(10_000).astype(np.float32) * 1e3,
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 3.4e38], dtype=np.float32)])
    ours = f32_to_bf16_bits(x)
    theirs = gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16).view(np.uint16).reshape(-1)
    assert np.array_equal(ours, theirs)


def test_permute_matches_reference_layout():
    # HF rotate-half rows [a0 a1 a2 a3 | b0 b1 b2 b3] per head -> llama.cpp pairs (a0 b0 a1 b1 ...)
    rows = np.arange(16, dtype=np.float32).reshape(16, 1)
    out = permute_qk(rows, 2).reshape(-1).tolist()
    assert out == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]


def test_pre_tokenizer_identified_by_hash(tiny_tied):
    tok, source = load_hf_tokenizer(tiny_tied)
    assert source == "vocab.json+merges.txt"
    assert KNOWN_PRE_TOKENIZERS[check_hash(tok)][0] == "qwen2"
    # digits one per token, reasoning tags single tokens
    assert tok.encode("12345", add_special_tokens=False).ids == [16, 17, 18, 19, 20]
    assert tok.encode("<think>x</think>").ids[0] == 151665


def test_tokenizer_json_variant(tiny_tied, tmp_path):
    """The same tokenizer saved as tokenizer.json (what hub repos ship) converts identically."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "tj"
    folder.mkdir()
    for item in tiny_tied.iterdir():
        if item.suffix == ".safetensors":
            (folder / item.name).symlink_to(item)  # never written: save_pretrained writes json only
        elif item.name not in ("vocab.json", "merges.txt"):
            (folder / item.name).write_bytes(item.read_bytes())
    transformers.AutoTokenizer.from_pretrained(str(tiny_tied)).save_pretrained(str(folder))
    assert (folder / "tokenizer.json").is_file()
    (folder / "vocab.json").unlink(missing_ok=True)
    (folder / "merges.txt").unlink(missing_ok=True)
    out = tmp_path / "tj.gguf"
    convert_folder(folder, out)
    meta, _ = _fields(out)
    assert meta["tokenizer.ggml.pre"] == "qwen2"
    assert meta["tokenizer.ggml.tokens"][151665] == "<think>"
    assert meta["tokenizer.ggml.tokens"][151643] == "<|endoftext|>"


def test_llama_cpp_loads_and_tokenizes(tiny_tied_gguf):
    from vibe_edge.engine.scoring import Vocabulary

    with Vocabulary(tiny_tied_gguf) as vocab:
        ids = vocab.tokenize("<|im_start|>user\n2025<think>")
    assert ids == [151644, 872, 198, 17, 15, 17, 20, 151665]


def test_f16_overflow_is_refused(tmp_path, tiny_builder):
    """A weight beyond f16's range would become inf in an f16 file: refuse and say so."""
    from vibe_edge.convert.errors import ConvertError
    from vibe_edge.convert.synth import write_safetensors

    folder = tiny_builder(tmp_path / "big", dtype="f32", num_hidden_layers=1)
    # Rewrite one tensor with a huge value (f32 keeps it; f16 cannot).
    ckpt = open_checkpoint(folder)
    items = []
    for name, ref in ckpt.tensors.items():
        arr = ref.array_f32().copy()
        if name == "model.layers.0.mlp.up_proj.weight":
            arr[0, 0] = 1e6
        items.append((name, ref.shape, lambda a=arr: a))
    write_safetensors(folder / "model.safetensors.new", items, "f32")
    (folder / "model.safetensors.new").replace(folder / "model.safetensors")
    with pytest.raises(ConvertError, match="beyond float16"):
        convert_folder(folder, tmp_path / "o.gguf", outtype="f16")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".vibe-edge-tmp*"))
    convert_folder(folder, tmp_path / "ok.gguf", outtype="bf16")  # bf16 has f32's range
