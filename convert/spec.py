"""What a checkpoint is: architecture and hyper-parameters from config.json, and its tensor plan.

Only the two decoder families vibe-edge runs are supported. Each HF tensor name maps to one GGUF
tensor name with an expected shape, so a checkpoint whose shapes disagree with its own config is
refused before anything is written.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vibe_edge.convert.errors import CheckpointError, UnsupportedArchitecture
from vibe_edge.convert.reader import Checkpoint, TensorRef

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "ModelSpec",
    "TensorPlan",
    "load_spec",
    "plan_tensors",
    "permute_qk",
]

# HF architecture -> GGUF `general.architecture`.
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "Qwen2ForCausalLM": "qwen2",
    "LlamaForCausalLM": "llama",
}

# Tensors in HF checkpoints that carry no weights llama.cpp needs.
SKIPPED_SUFFIXES = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")

_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.o_proj.bias": "attn_output.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_MAP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class ModelSpec:
    """The hyper-parameters that decide shapes and GGUF metadata."""

    hf_architecture: str
    gguf_architecture: str
    config: dict[str, Any]
    n_layers: int
    hidden: int
    ffn: int
    n_head: int
    n_head_kv: int
    head_dim: int
    vocab_size: int
    context_length: int | None
    rms_eps: float | None
    rope_theta: float | None
    tied_embeddings: bool
    rope_scaling: dict[str, Any] = field(default_factory=dict)

    @property
    def permutes_qk(self) -> bool:
        # llama.cpp's llama graph uses the "normal" rope layout; HF Llama stores q/k rows in the
        # rotate-half order, so they are reordered on the way in (Qwen2 uses NEOX rope: no permute).
        return self.gguf_architecture == "llama"


@dataclass(frozen=True)
class TensorPlan:
    """One GGUF tensor: where it comes from and how it is transformed."""

    gguf_name: str
    source: TensorRef | None  # None for generated tensors (rope_freqs)
    shape: tuple[int, ...]  # HF (row-major) shape
    keep_f32: bool  # norms, biases and 1-D tensors stay f32, as llama.cpp expects
    permute_heads: int = 0  # >0: reorder rows for llama rope with this many heads
    generated: np.ndarray | None = None

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


def load_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no config.json in {folder}",
                              hint="point SRC at a Hugging Face model folder (config.json + *.safetensors)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"config.json is unreadable ({exc})") from exc
    if isinstance(config.get("text_config"), dict):
        config = {**config, **config["text_config"]}
    return config


def _need(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in config and config[key] is not None:
            return config[key]
    raise CheckpointError(f"config.json lacks {keys[0]!r}", hint="the config is incomplete or not a decoder model")


# Sanity ceilings for config.json numbers, far above any real decoder (VibeThinker: 28 layers,
# hidden 1536, 151,936 tokens). Every size is also checked against the tensors themselves
# (plan_tensors) before anything is allocated from it.
MAX_CONFIG_VALUE = 1 << 24


def _count(config: dict[str, Any], key: str, value: Any) -> int:
    """A config.json count (layers, heads, sizes): an integer from 1 to MAX_CONFIG_VALUE."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not 1 <= value <= MAX_CONFIG_VALUE:
        raise CheckpointError(f"config.json has {key}={value!r}, which is not a plausible count "
                              f"(a whole number from 1 to {MAX_CONFIG_VALUE:,})",
                              hint="the config is damaged or does not belong to these weights")
    return int(value)


def load_spec(folder: Path) -> ModelSpec:
    config = load_config(folder)
    archs = config.get("architectures") or []
    arch = archs[0] if archs else None
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"architecture {arch or '(none given)'} is not supported; vibe-edge converts "
            f"{' and '.join(SUPPORTED_ARCHITECTURES)}",
            hint="VibeThinker, Qwen2.5(-Math), DeepSeek-R1-Distill-Qwen, SmolLM2 and Llama "
                 "checkpoints are supported; use llama.cpp's own converter for other models")
    n_head = _count(config, "num_attention_heads", _need(config, "num_attention_heads"))
    hidden = _count(config, "hidden_size", _need(config, "hidden_size"))
    n_head_kv = _count(config, "num_key_value_heads", config.get("num_key_value_heads") or n_head)
    head_dim = _count(config, "head_dim", config.get("head_dim") or max(1, hidden // n_head))
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope_theta = config.get("rope_theta", rope.get("rope_theta"))
    rope_type = rope.get("rope_type", rope.get("type"))
    if rope_type not in (None, "default", "linear", "llama3"):
        raise UnsupportedArchitecture(
            f"rope scaling {rope_type!r} is not supported by vibe-edge's converter",
            hint="supported: none, linear, llama3")
    if config.get("use_sliding_window"):
        raise UnsupportedArchitecture("sliding-window attention checkpoints are not supported")
    ctx = next((config[k] for k in ("max_position_embeddings", "n_ctx", "n_positions", "max_length",
                                    "max_sequence_length", "model_max_length") if k in config), None)
    return ModelSpec(
        hf_architecture=arch,
        gguf_architecture=SUPPORTED_ARCHITECTURES[arch],
        config=config,
        n_layers=_count(config, "num_hidden_layers", _need(config, "num_hidden_layers")),
        hidden=hidden,
        ffn=_count(config, "intermediate_size", _need(config, "intermediate_size")),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        vocab_size=_count(config, "vocab_size", _need(config, "vocab_size")),
        context_length=int(ctx) if isinstance(ctx, (int, float)) and not isinstance(ctx, bool) else None,
        rms_eps=config.get("rms_norm_eps"),
        rope_theta=float(rope_theta) if rope_theta is not None else None,
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        rope_scaling=rope if rope_type not in (None, "default") else {},
    )


def _expected_shape(spec: ModelSpec, hf_suffix: str) -> tuple[int, ...]:
    q = spec.n_head * spec.head_dim
    kv = spec.n_head_kv * spec.head_dim
    return {
        "input_layernorm.weight": (spec.hidden,),
        "post_attention_layernorm.weight": (spec.hidden,),
        "self_attn.q_proj.weight": (q, spec.hidden),
        "self_attn.q_proj.bias": (q,),
        "self_attn.k_proj.weight": (kv, spec.hidden),
        "self_attn.k_proj.bias": (kv,),
        "self_attn.v_proj.weight": (kv, spec.hidden),
        "self_attn.v_proj.bias": (kv,),
        "self_attn.o_proj.weight": (spec.hidden, q),
        "self_attn.o_proj.bias": (spec.hidden,),
        "mlp.gate_proj.weight": (spec.ffn, spec.hidden),
        "mlp.up_proj.weight": (spec.ffn, spec.hidden),
        "mlp.down_proj.weight": (spec.hidden, spec.ffn),
    }[hf_suffix]


def _llama3_rope_factors(spec: ModelSpec) -> np.ndarray:
    """Per-frequency rope factors of Llama-3 scaling, stored as the `rope_freqs` tensor."""
    rope = spec.rope_scaling
    base = spec.rope_theta or 10000.0
    dim = spec.head_dim
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _check_layer_count(spec: ModelSpec, checkpoint: Checkpoint) -> None:
    """config.json's num_hidden_layers against the layers the tensors hold, before the list of
    required tensor names (one set per layer) is built from it."""
    layers = {int(m.group(1)) for name in checkpoint.tensors if (m := _LAYER_RE.match(name))}
    found = max(layers) + 1 if layers else 0
    if spec.n_layers > found:
        raise CheckpointError(
            f"config.json says num_hidden_layers={spec.n_layers} but the checkpoint holds "
            f"tensors for {found} layer(s)",
            hint="the config and the weights do not belong together, or shards are missing")


def plan_tensors(spec: ModelSpec, checkpoint: Checkpoint) -> list[TensorPlan]:
    """Map every checkpoint tensor to its GGUF tensor, checking names, shapes and completeness."""
    plans: list[TensorPlan] = []
    seen: set[str] = set()
    _check_layer_count(spec, checkpoint)
    for name, ref in checkpoint.tensors.items():
        if name.endswith(SKIPPED_SUFFIXES):
            continue
        if name in _GLOBAL_MAP:
            gguf_name = _GLOBAL_MAP[name]
            expected: tuple[int, ...] = ((spec.hidden,) if name == "model.norm.weight"
                                         else (spec.vocab_size, spec.hidden))
            hf_suffix = name
        else:
            match = _LAYER_RE.match(name)
            if not match or match.group(2) not in _LAYER_MAP:
                raise CheckpointError(f"unexpected tensor {name!r} for {spec.hf_architecture}",
                                      hint="the checkpoint does not match its config.json architecture")
            layer, hf_suffix = int(match.group(1)), match.group(2)
            if layer >= spec.n_layers:
                raise CheckpointError(f"tensor {name!r} is beyond num_hidden_layers={spec.n_layers}")
            gguf_name = f"blk.{layer}.{_LAYER_MAP[hf_suffix]}"
            expected = _expected_shape(spec, hf_suffix)
        if ref.shape != expected:
            if name == "model.embed_tokens.weight" and len(ref.shape) == 2 and ref.shape[1] == spec.hidden:
                raise CheckpointError(
                    f"vocab size mismatch: config.json says vocab_size={spec.vocab_size} but the "
                    f"embeddings have {ref.shape[0]} rows",
                    hint="the config and the weights come from different checkpoints")
            raise CheckpointError(
                f"tensor {name!r} has shape {list(ref.shape)}, expected {list(expected)} from config.json",
                hint="the weights and config.json do not belong together")
        if ref.dtype not in ("F32", "F16", "BF16"):
            raise CheckpointError(f"tensor {name!r} is {ref.dtype}; only bf16, f16 and f32 weights are converted",
                                  hint="quantized (GPTQ/AWQ/FP8) checkpoints are not supported")
        permute = 0
        if spec.permutes_qk and hf_suffix.startswith("self_attn.q_proj"):
            permute = spec.n_head
        elif spec.permutes_qk and hf_suffix.startswith("self_attn.k_proj"):
            permute = spec.n_head_kv
        keep_f32 = len(expected) <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight")
        plans.append(TensorPlan(gguf_name, ref, expected, keep_f32, permute))
        seen.add(gguf_name)
    if spec.rope_scaling.get("rope_type", spec.rope_scaling.get("type")) == "llama3":
        # Sized by head_dim: built only now that the q/k shapes have confirmed it.
        factors = _llama3_rope_factors(spec)
        plans.insert(0, TensorPlan("rope_freqs.weight", None, factors.shape, True, generated=factors))
    required = {"token_embd.weight", "output_norm.weight"}
    if not spec.tied_embeddings:
        required.add("output.weight")
    for layer in range(spec.n_layers):
        for suffix in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                       "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"):
            required.add(f"blk.{layer}.{suffix}.weight")
    missing = sorted(required - seen)
    if missing:
        if missing == ["output.weight"]:
            raise CheckpointError("the checkpoint has no lm_head.weight but config.json says "
                                  "tie_word_embeddings is false",
                                  hint="the checkpoint is incomplete")
        raise CheckpointError(f"{len(missing)} tensor(s) missing from the checkpoint (e.g. {missing[0]})",
                              hint="the checkpoint is incomplete: a shard may be missing or truncated")
    return plans


def permute_qk(rows: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder q/k rows from HF's rotate-half layout to llama.cpp's interleaved rope layout.

    Within each head, rows [first half | second half] become pairs (r0, r_half, r1, r_half+1, ...).
    Works for weights (2-D) and biases (1-D).
    """
    shape = rows.shape
    head_rows = shape[0] // n_heads
    return (rows.reshape(n_heads, 2, head_rows // 2, *shape[1:])
            .swapaxes(1, 2)
            .reshape(shape))
