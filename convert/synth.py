"""Synthetic checkpoints with real shapes and a real tokenizer, for tests and the benchmark.

Weights are random (the real ones are not reachable offline) but everything else is what users
convert: Qwen2 config keys, bf16 safetensors written tensor by tensor (sharded with an index),
tied or untied embeddings, and the real Qwen2.5-Math tokenizer files plus VibeThinker's
<think>/</think> added tokens.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vibe_edge.convert.writer import f32_to_bf16_bits

__all__ = [
    "THINK_TOKENS",
    "add_think_tokens",
    "qwen2_tensor_shapes",
    "write_qwen2_checkpoint",
    "write_safetensors",
]

THINK_TOKENS = ("<think>", "</think>")

_ST_DTYPE = {"bf16": ("BF16", 2), "f16": ("F16", 2), "f32": ("F32", 4)}


def _encode(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bf16":
        return f32_to_bf16_bits(values)
    if dtype == "f16":
        return values.astype("<f2")
    return values.astype("<f4")


def write_safetensors(path: Path, tensors: Iterable[tuple[str, tuple[int, ...], Callable[[], np.ndarray]]],
                      dtype: str = "bf16") -> int:
    """Write a safetensors file whose tensors are produced one at a time (float32 -> dtype).

    The header needs every offset first, so shapes are given up front and data is generated lazily.
    """
    items = list(tensors)
    st_dtype, size = _ST_DTYPE[dtype]
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in items:
        nbytes = math.prod(shape) * size
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name, shape, make in items:
            data = _encode(np.asarray(make(), dtype=np.float32).reshape(shape), dtype)
            fh.write(data.tobytes())
    return offset


def qwen2_tensor_shapes(config: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    h, ff, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config.get("head_dim") or h // n_head
    bias = config.get("model_type") == "qwen2"
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (v, h))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (n_head * hd, h)),
            (p + "self_attn.k_proj.weight", (n_kv * hd, h)),
            (p + "self_attn.v_proj.weight", (n_kv * hd, h)),
            (p + "self_attn.o_proj.weight", (h, n_head * hd)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate_proj.weight", (ff, h)),
            (p + "mlp.up_proj.weight", (ff, h)),
            (p + "mlp.down_proj.weight", (h, ff)),
        ]
        if bias:
            shapes += [(p + "self_attn.q_proj.bias", (n_head * hd,)),
                       (p + "self_attn.k_proj.bias", (n_kv * hd,)),
                       (p + "self_attn.v_proj.bias", (n_kv * hd,))]
    shapes.append(("model.norm.weight", (h,)))
    if not config.get("tie_word_embeddings", False):
        shapes.append(("lm_head.weight", (v, h)))
    return shapes


def _init(name: str, shape: tuple[int, ...], rng: np.random.Generator, hidden: int) -> np.ndarray:
    """Random weights scaled so the tiny model's next-token distribution is peaked, not uniform:
    differences between quantizations then show up in KL and top-1 as they do on real models."""
    if name.endswith("norm.weight"):
        return 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    if name.endswith(".bias"):
        return 0.5 * rng.standard_normal(shape, dtype=np.float32)
    if "embed_tokens" in name or name == "lm_head.weight":
        return 0.3 * rng.standard_normal(shape, dtype=np.float32)
    return (1.0 / math.sqrt(hidden)) * rng.standard_normal(shape, dtype=np.float32)


def add_think_tokens(tokenizer_config: dict[str, Any]) -> dict[str, Any]:
    """Add <think>/</think> after the last added id, as VibeThinker's tokenizer does."""
    decoder = dict(tokenizer_config.get("added_tokens_decoder") or {})
    next_id = max(int(k) for k in decoder) + 1
    for offset, text in enumerate(THINK_TOKENS):
        decoder[str(next_id + offset)] = {"content": text, "lstrip": False, "normalized": False,
                                          "rstrip": False, "single_word": False, "special": False}
    return {**tokenizer_config, "added_tokens_decoder": decoder}


def write_qwen2_checkpoint(
    folder: Path,
    tokenizer_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    dtype: str = "bf16",
    n_shards: int = 1,
    seed: int = 0,
    think_tokens: bool = True,
    base_config: dict[str, Any] | None = None,
) -> Path:
    """Write a random-weight Qwen2 checkpoint with the tokenizer files from `tokenizer_dir`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(base_config or json.loads((Path(tokenizer_dir) / "config.json").read_text()))
    config.update(overrides or {})
    config["torch_dtype"] = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[dtype]
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for fname in ("vocab.json", "merges.txt"):
        shutil.copyfile(Path(tokenizer_dir) / fname, folder / fname)
    tok_config = json.loads((Path(tokenizer_dir) / "tokenizer_config.json").read_text())
    if think_tokens:
        tok_config = add_think_tokens(tok_config)
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2, ensure_ascii=False))
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 151643, "eos_token_id": 151643, "do_sample": True,
         "temperature": 0.6, "top_p": 0.95}, indent=2))

    rng = np.random.default_rng(seed)
    shapes = qwen2_tensor_shapes(config)
    hidden = config["hidden_size"]
    makers = [(n, s, (lambda n=n, s=s: _init(n, s, rng, hidden))) for n, s in shapes]
    if n_shards <= 1:
        write_safetensors(folder / "model.safetensors", makers, dtype)
        return folder
    # Split by cumulative size so shards are similar, as HF's save_pretrained does.
    sizes = [math.prod(s) for _, s, _ in makers]
    per_shard = sum(sizes) / n_shards
    groups: list[list[Any]] = [[]]
    acc = 0.0
    for item, size in zip(makers, sizes, strict=True):
        if acc >= per_shard * len(groups) and len(groups) < n_shards and groups[-1]:
            groups.append([])
        groups[-1].append(item)
        acc += size
    weight_map: dict[str, str] = {}
    total = 0
    for i, group in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        total += write_safetensors(folder / fname, group, dtype)
        weight_map.update({name: fname for name, _, _ in group})
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return folder
