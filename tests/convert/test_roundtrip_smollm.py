"""A real model round trip: the demo SmolLM2-135M GGUF -> Hugging Face Llama checkpoint -> GGUF.

The demo file (Q4_1) is dequantized into a float32 safetensors checkpoint with a tokenizer.json,
its q/k rows put back into Hugging Face's layout (llama.cpp stores them permuted for its rope).
vibe-edge converts that back; the result must hold the same numbers as the original and give
the original's logits, and transformers must agree with it (real weights, not random ones).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

from vibe_edge.convert.core import convert_folder
from vibe_edge.gguf_reader import GGUFFile, read_gguf
from vibe_edge.convert.synth import write_safetensors


_LAYER = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _dequant(info: GGUFFile, name: str) -> np.ndarray:
    t = info.tensor(name)
    hf_shape = tuple(reversed(t.shape))
    block, size = GGML_QUANT_SIZES[t.type]
    rows = int(np.prod(hf_shape[:-1])) if len(hf_shape) > 1 else 1
    raw = np.asarray(info.raw(name)).reshape(rows, hf_shape[-1] // block * size)
    return dequantize(raw, t.type).reshape(hf_shape).astype(np.float32)


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's q/k row order: interleaved pairs back to rotate-half halves."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tokenizer_json(info: GGUFFile, folder: Path) -> None:
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    tokens = info.fields["tokenizer.ggml.tokens"]
    types = info.fields["tokenizer.ggml.token_type"]
    merges = [tuple(m.split(" ")) for m in info.fields["tokenizer.ggml.merges"]]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix="",
                        fuse_unk=False, byte_fallback=False))
    # SmolLM's published pre-tokenizer: each digit alone, then GPT-2's byte-level split.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i, ty in enumerate(types) if ty == 3])
    tok.save(str(folder / "tokenizer.json"))
    f = info.fields
    (folder / "tokenizer_config.json").write_text(json.dumps({
        # The generic class loads tokenizer.json as written. (transformers 5 rebuilds a declared
        # GPT2Tokenizer's pre-tokenizer as plain ByteLevel, dropping SmolLM's digit split.)
        "tokenizer_class": "PreTrainedTokenizerFast", "add_prefix_space": False, "model_max_length": 8192,
        "bos_token": tokens[f["tokenizer.ggml.bos_token_id"]], "eos_token": tokens[f["tokenizer.ggml.eos_token_id"]],
        "unk_token": tokens[f["tokenizer.ggml.unknown_token_id"]],
        "pad_token": tokens[f["tokenizer.ggml.padding_token_id"]],
        "chat_template": f["tokenizer.chat_template"], "clean_up_tokenization_spaces": False,
    }))


def _hf_checkpoint(demo: Path, folder: Path) -> Path:
    info = read_gguf(demo)
    f = info.fields
    n_head, n_kv = f["llama.attention.head_count"], f["llama.attention.head_count_kv"]
    n_layers = f["llama.block_count"]
    folder.mkdir(parents=True)
    tensors = [("model.embed_tokens.weight", "token_embd.weight"), ("model.norm.weight", "output_norm.weight")]
    for i in range(n_layers):
        for g, h in _LAYER.items():
            tensors.append((f"model.layers.{i}.{h}.weight", f"blk.{i}.{g}.weight"))
    items = []
    for hf_name, gguf_name in tensors:
        def make(gguf_name=gguf_name):
            w = _dequant(info, gguf_name)
            if gguf_name.endswith("attn_q.weight"):
                w = _unpermute(w, n_head)
            elif gguf_name.endswith("attn_k.weight"):
                w = _unpermute(w, n_kv)
            return w
        shape = tuple(reversed(info.tensor(gguf_name).shape))
        items.append((hf_name, shape, make))
    write_safetensors(folder / "model.safetensors", items, "f32")
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": f["llama.embedding_length"], "intermediate_size": f["llama.feed_forward_length"],
        "num_hidden_layers": n_layers, "num_attention_heads": n_head, "num_key_value_heads": n_kv,
        "max_position_embeddings": f["llama.context_length"], "rms_norm_eps": f["llama.attention.layer_norm_rms_epsilon"],
        "rope_theta": f["llama.rope.freq_base"], "vocab_size": f["llama.vocab_size"], "tie_word_embeddings": True,
        "bos_token_id": f["tokenizer.ggml.bos_token_id"], "eos_token_id": f["tokenizer.ggml.eos_token_id"],
        "hidden_act": "silu", "torch_dtype": "float32",
    }))
    _tokenizer_json(info, folder)
    return folder


@pytest.fixture(scope="session")
def smollm_roundtrip(tmp_path_factory, demo_model):
    root = tmp_path_factory.mktemp("smollm")
    ckpt = _hf_checkpoint(demo_model, root / "SmolLM2-135M-Instruct")
    out = root / "smollm-F32.gguf"
    convert_folder(ckpt, out, outtype="f32")
    return ckpt, out


def test_roundtrip_metadata_and_exact_tensors(smollm_roundtrip, demo_model):
    ckpt, out = smollm_roundtrip
    orig, back = read_gguf(demo_model), read_gguf(out)
    for key in ("general.architecture", "llama.block_count", "llama.context_length", "llama.embedding_length",
                "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
                "llama.rope.freq_base", "llama.vocab_size", "llama.rope.dimension_count",
                "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template"):
        assert back.fields[key] == orig.fields[key], key
    assert back.fields["tokenizer.ggml.pre"] == "smollm"  # identified by hash, as llama.cpp does
    assert [t.name for t in back.tensors] != [] and len(back.tensors) == len(orig.tensors)
    # q/k went HF-layout and back through our permutation: identical numbers to the original.
    for name in ("blk.0.attn_q.weight", "blk.7.attn_k.weight", "blk.29.ffn_down.weight", "token_embd.weight"):
        ref = _dequant(orig, name)
        got = np.asarray(back.raw(name)).view(np.float32).reshape(ref.shape)
        assert np.array_equal(got, ref), name


def test_roundtrip_logits_match_the_original(smollm_roundtrip, demo_model):
    from vibe_edge.convert.corpus import logit_prompts
    from vibe_edge.bench.metrics import kl_divergence, log_softmax
    from vibe_edge.engine.scoring import LogitsRunner, Vocabulary

    _, out = smollm_roundtrip
    a, b = LogitsRunner(demo_model, 256), LogitsRunner(out, 256)
    va, vb = Vocabulary(demo_model), Vocabulary(out)
    try:
        kls, agree, total = [], 0, 0
        for prompt in logit_prompts()[:3]:
            ids = va.tokenize(prompt)
            assert ids == vb.tokenize(prompt)
            la, lb = a.logits(ids), b.logits(ids)
            kls.append(kl_divergence(log_softmax(la), log_softmax(lb)))
            agree += int((la.argmax(-1) == lb.argmax(-1)).sum())
            total += len(ids)
    finally:
        for item in (a, b, va, vb):
            item.close()
    kl = np.concatenate(kls)
    # Same weights; the original multiplies in Q4_1 x Q8_1, ours in f32: rounding-level differences.
    assert kl.mean() < 0.01, kl.mean()
    assert agree / total > 0.9


def test_roundtrip_against_transformers(smollm_roundtrip):
    pytest.importorskip("transformers")
    from vibe_edge.convert.verify import compare_logits, tokenizer_parity

    ckpt, out = smollm_roundtrip
    parity = tokenizer_parity(ckpt, out)
    assert parity.passed, parity.mismatches[:3]
    logits = compare_logits(ckpt, out)
    assert logits.passed, logits.failures
    assert logits.kl_mean < 1e-3 and logits.top1 >= 0.98
