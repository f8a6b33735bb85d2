"""What vibe-edge needs to know about a model file, before llama.cpp loads it.

inspect_gguf() reads the header through the one GGUF reader (vibe_edge.gguf_reader, which turns
a truncated, damaged or foreign file into a ModelFileError that says what to do) and answers
with GGUFFacts: the model's shape for the hardware plan (layers, KV heads, head size), its
quantization, whether it thinks, its chat template. Only the header, the metadata and the
tensor directory are read, never tensor data, so a 3 GB file is inspected in well under a
second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gguf

from vibe_edge.defaults import KV_BYTES_PER_ELEMENT
from vibe_edge.errors import ModelFileError
from vibe_edge.gguf_reader import GGUF_MAGIC, SUPPORTED_GGUF_VERSIONS, GGUFFile, keep_small_arrays, read_gguf

__all__ = [
    "GGUF_MAGIC",
    "SUPPORTED_GGUF_VERSIONS",
    "SUPPORTED_ARCHITECTURES",
    "KV_BYTES_PER_ELEMENT",
    "GGUFFacts",
    "inspect_gguf",
    "quant_name",
]

# Not a whitelist (llama.cpp decides what loads): the architectures vibe-edge is tested with, so
# anything else gets a "should work, untested" warning instead of silence.
SUPPORTED_ARCHITECTURES = frozenset({"qwen2", "llama"})

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_K = gguf.Keys


@dataclass(frozen=True)
class GGUFFacts:
    """What vibe-edge needs to know about a model file, read from its header."""

    path: Path
    size_bytes: int
    version: int
    architecture: str
    name: str                  # general.name, else the file name without .gguf
    file_type: int | None      # general.file_type (a gguf.LlamaFileType value)
    quant: str | None          # "Q4_K_M", "Q8_0", "F16"...; guessed from tensor types if unset
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx_train: int | None
    vocab_size: int | None
    chat_template: str | None
    has_think_tokens: bool     # the vocabulary has both <think> and </think>
    n_tensors: int
    n_params: int              # sum of tensor element counts
    tensor_data_bytes: int     # what the weights take in memory once loaded
    # The longest token text in bytes: no prompt longer than ctx x this many characters can fit
    # a context of ctx tokens (the engine refuses such a prompt before tokenizing it).
    max_token_bytes: int | None = None

    def kv_bytes_per_token(self, kv_type: str = "f16") -> int:
        """KV-cache bytes one token takes in one sequence: layers x (K and V) x kv heads x dims."""
        try:
            per_element = KV_BYTES_PER_ELEMENT[kv_type]
        except KeyError:
            raise ValueError(f"kv_type must be one of {sorted(KV_BYTES_PER_ELEMENT)}, "
                             f"got {kv_type!r}") from None
        return int(self.n_layer * 2 * self.n_head_kv * self.head_dim * per_element)

    @property
    def tested_architecture(self) -> bool:
        return self.architecture in SUPPORTED_ARCHITECTURES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def quant_name(file_type: int | None) -> str | None:
    """gguf.LlamaFileType value -> the usual short name ("MOSTLY_Q4_K_M" -> "Q4_K_M")."""
    if file_type is None:
        return None
    try:
        name = gguf.LlamaFileType(file_type).name
    except ValueError:
        return None
    if name == "GUESSED":
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def inspect_gguf(path: str | Path) -> GGUFFacts:
    """Read a GGUF file's header and metadata; raise ModelFileError if llama.cpp could not use it."""
    return _facts(read_gguf(path, keep_array=keep_small_arrays))


def _facts(f: GGUFFile) -> GGUFFacts:
    path = f.path
    arch = f.architecture
    if arch is None:
        raise ModelFileError(
            f"{path} has no general.architecture key, so llama.cpp cannot tell what model it is",
            hint="the converter that wrote it is broken or too old: convert the model again",
        )

    def need(key: str, pick: Callable[[Any], int] = int) -> int:
        value = f.arch_field(key)
        if value is None:
            name = key.format(arch=arch)
            raise ModelFileError(
                f"{path} ({arch}) lacks {name}; it is not a language model vibe-edge can run "
                "or was written by a broken converter",
                hint="convert the model again with `vibe-edge convert`",
            )
        return pick(value)

    # Some architectures give per-layer head counts as arrays; the largest bounds the KV size.
    per_layer = lambda v: int(max(v)) if isinstance(v, list) else int(v)  # noqa: E731
    n_layer = need(_K.LLM.BLOCK_COUNT)
    n_embd = need(_K.LLM.EMBEDDING_LENGTH)
    n_head = need(_K.Attention.HEAD_COUNT, per_layer)
    kv = f.arch_field(_K.Attention.HEAD_COUNT_KV)
    n_head_kv = per_layer(kv) if kv is not None else n_head
    key_length = f.arch_field(_K.Attention.KEY_LENGTH)
    head_dim = int(key_length) if key_length else (n_embd // n_head if n_head else 0)
    ctx = f.arch_field(_K.LLM.CONTEXT_LENGTH)

    n_params, data_bytes, bytes_by_type = 0, 0, {}
    for t in f.tensors:
        n_params += t.n_elements
        if t.nbytes:
            data_bytes += t.nbytes
            bytes_by_type[t.type] = bytes_by_type.get(t.type, 0) + t.nbytes

    file_type = f.fields.get(_K.General.FILE_TYPE)
    file_type = int(file_type) if isinstance(file_type, int) else None
    quant = quant_name(file_type)
    if quant is None and bytes_by_type:
        # No (or an unknown) file type: name the type holding most of the bytes, as llama.cpp does.
        dominant = max(bytes_by_type, key=bytes_by_type.__getitem__)
        quant = gguf.GGMLQuantizationType(dominant).name

    tokens = f.fields.get(_K.Tokenizer.LIST)
    if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens[:1]):
        vocab: Any = len(tokens)
        thinks = _THINK_OPEN in tokens and _THINK_CLOSE in tokens
        longest_token = max((len(t.encode("utf-8", errors="replace")) for t in tokens), default=0)
    else:
        vocab, thinks, longest_token = f.arch_field(_K.LLM.VOCAB_SIZE), False, 0
    name = f.fields.get(_K.General.NAME)
    template = f.fields.get(_K.Tokenizer.CHAT_TEMPLATE)
    return GGUFFacts(
        path=path, size_bytes=f.size_bytes, version=f.version, architecture=arch,
        name=name if isinstance(name, str) and name.strip() else path.name.removesuffix(".gguf"),
        file_type=file_type, quant=quant, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
        n_head_kv=n_head_kv, head_dim=head_dim,
        n_ctx_train=int(ctx) if isinstance(ctx, int) and ctx > 0 else None,
        vocab_size=int(vocab) if isinstance(vocab, int) else None,
        chat_template=template if isinstance(template, str) and template else None,
        has_think_tokens=thinks, n_tensors=len(f.tensors), n_params=n_params,
        tensor_data_bytes=data_bytes, max_token_bytes=longest_token or None,
    )
