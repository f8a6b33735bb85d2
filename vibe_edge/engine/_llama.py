"""Thin, private wrappers over llama.cpp's C API (through llama-cpp-python's ctypes bindings).

Everything with a pointer in it lives here. Objects free their C memory in `close()`; the
engine calls it explicitly (finalizers at interpreter exit are not reliable with ctypes).
Nothing in this module is thread-safe: the scheduler thread owns the context. Model-level
reads (tokenize, token_to_piece, metadata) are safe from any thread, as in llama-server.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import llama_cpp as C

from vibe_edge.engine.types import SamplingParams
from vibe_edge.errors import InvalidRequest, ModelFileError

log = logging.getLogger("vibe_edge.llama")

KV_TYPES = {"f16": C.GGML_TYPE_F16, "q8_0": C.GGML_TYPE_Q8_0, "q4_0": C.GGML_TYPE_Q4_0}

# ---------------------------------------------------------------------------------------------
# Logging: llama.cpp prints a lot to stderr by default. Route it to Python logging and keep the
# last error lines, so a failed load can say *why* (e.g. "unknown model architecture").

_recent_errors: collections.deque[str] = collections.deque(maxlen=20)
# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 "continue the previous line".
_LOG_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_last_level = [logging.DEBUG]


@C.llama_log_callback
def _log_callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    py_level = _last_level[0] if level == 5 else _LOG_LEVELS.get(level, logging.DEBUG)
    _last_level[0] = py_level
    message = text.decode("utf-8", errors="replace").rstrip()
    if not message:
        return
    # Load failures are logged as "error loading model: <reason>": keep them for our message.
    if py_level >= logging.ERROR or "error" in message.lower():
        _recent_errors.append(message)
    # Warnings stay at debug too: llama.cpp is chatty, and our own errors say what matters.
    log.debug("%s", message)


_backend_lock = threading.Lock()
_backend_ready = False


def init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            C.llama_log_set(_log_callback, ctypes.c_void_p(0))
            C.llama_backend_init()
            _backend_ready = True


def _failure_reason() -> str:
    """The most specific thing llama.cpp said before failing."""
    for message in _recent_errors:
        if "error loading model:" in message:
            return message.split("error loading model:", 1)[1].strip()
    return "; ".join(_recent_errors) or "no reason given"


def supports_gpu_offload() -> bool:
    return bool(C.llama_supports_gpu_offload())


def system_info() -> str:
    """llama_print_system_info(): the features this build was compiled for ("AVX2 = 1 | ...")."""
    init_backend()  # the CPU backend registers its features when loaded
    raw = C.llama_print_system_info()
    return raw.decode("utf-8", errors="replace").strip() if raw else ""


# ---------------------------------------------------------------------------------------------


class Model:
    """A loaded GGUF: weights, vocabulary and metadata."""

    def __init__(self, path: str, *, gpu_layers: int = 0):
        init_backend()
        params = C.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        _recent_errors.clear()
        ptr = C.llama_model_load_from_file(path.encode(), params)
        if not ptr:
            raise ModelFileError(
                f"llama.cpp could not load {path}: {_failure_reason()}",
                hint="check that the file is a complete GGUF of an architecture this llama.cpp "
                     "supports (`vibe-edge models info` shows its metadata); re-download or "
                     "re-convert it if it is damaged",
            )
        self.ptr = ptr
        self.vocab = C.llama_model_get_vocab(ptr)
        self.n_vocab = C.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(C.llama_vocab_get_add_bos(self.vocab))
        self._piece_cache: dict[int, bytes] = {}
        self._eog_cache: dict[int, bool] = {}

    # -- metadata ------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(8192)
        n = C.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):  # long values (chat templates): retry with the exact size
            buf = ctypes.create_string_buffer(n + 1)
            C.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    def chat_template(self) -> str | None:
        raw = C.llama_model_chat_template(self.ptr, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    @property
    def n_params(self) -> int:
        return int(C.llama_model_n_params(self.ptr))

    @property
    def size_bytes(self) -> int:
        return int(C.llama_model_size(self.ptr))

    @property
    def n_ctx_train(self) -> int:
        return int(C.llama_model_n_ctx_train(self.ptr))

    @property
    def n_layer(self) -> int:
        return int(C.llama_model_n_layer(self.ptr))

    def token_text(self, token: int) -> str:
        raw = C.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def special_token(self, which: str) -> int:
        fn = {"bos": C.llama_vocab_bos, "eos": C.llama_vocab_eos, "eot": C.llama_vocab_eot}[which]
        return int(fn(self.vocab))

    # -- text <-> tokens -----------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (C.llama_token * capacity)()
        n = C.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:  # buffer too small: -n is the size needed
            capacity = -n
            buf = (C.llama_token * capacity)()
            n = C.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            raise InvalidRequest("the prompt could not be tokenized", param="prompt")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for. Control tokens (e.g. <|im_end|>) render as nothing;
        user-defined ones (e.g. <think>) render as their text."""
        cached = self._piece_cache.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        piece = buf.raw[:n]
        self._piece_cache[token] = piece
        return piece

    def is_eog(self, token: int) -> bool:
        cached = self._eog_cache.get(token)
        if cached is None:
            cached = self._eog_cache[token] = bool(C.llama_vocab_is_eog(self.vocab, token))
        return cached

    def close(self) -> None:
        if self.ptr:
            C.llama_model_free(self.ptr)
            self.ptr = None


@dataclass(frozen=True)
class ContextParams:
    n_seq: int
    ctx_per_seq: int
    n_batch: int
    threads: int
    threads_batch: int
    kv_type: str = "f16"
    flash_attn: bool | None = None  # None: llama.cpp decides


class Context:
    """One llama context holding `n_seq` independent sequences (the engine's slots).

    The KV cache is not unified: each sequence owns `ctx_per_seq` cells, so one user's long
    chat can never evict another's, and attention skips other sequences' cells.
    """

    def __init__(self, model: Model, p: ContextParams):
        params = C.llama_context_default_params()
        params.n_ctx = p.n_seq * p.ctx_per_seq
        params.n_batch = p.n_batch
        params.n_ubatch = min(p.n_batch, 512)
        params.n_seq_max = p.n_seq
        params.n_threads = p.threads
        params.n_threads_batch = p.threads_batch
        params.kv_unified = False
        params.no_perf = True
        params.type_k = KV_TYPES[p.kv_type]
        params.type_v = KV_TYPES[p.kv_type]
        if p.flash_attn is not None:
            params.flash_attn_type = (C.LLAMA_FLASH_ATTN_TYPE_ENABLED if p.flash_attn
                                      else C.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        _recent_errors.clear()
        ptr = C.llama_init_from_model(model.ptr, params)
        if not ptr:
            reason = _failure_reason()
            raise ModelFileError(
                f"llama.cpp could not create a context ({p.n_seq} slots x {p.ctx_per_seq} "
                f"tokens, KV {p.kv_type}): {reason}",
                hint="try fewer slots (--slots), a smaller context (--ctx) or --kv-type q8_0",
            )
        self.ptr = ptr
        self.model = model
        self.params = p
        self.memory = C.llama_get_memory(ptr)

    def decode(self, batch: Batch) -> int:
        return int(C.llama_decode(self.ptr, batch.raw))

    def seq_remove(self, seq: int, start: int = -1, end: int = -1) -> bool:
        """Drop positions [start, end) of a sequence (-1: open bound)."""
        return bool(C.llama_memory_seq_rm(self.memory, seq, start, end))

    def seq_pos_max(self, seq: int) -> int:
        return int(C.llama_memory_seq_pos_max(self.memory, seq))

    def clear(self) -> None:
        C.llama_memory_clear(self.memory, True)

    def close(self) -> None:
        if self.ptr:
            C.llama_free(self.ptr)
            self.ptr = None


class Batch:
    """A reusable llama_batch: tokens of several sequences, one decode call."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.raw = C.llama_batch_init(capacity, 0, 1)
        self.n = 0

    def clear(self) -> None:
        self.n = 0
        self.raw.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, want_logits: bool) -> int:
        """Append one token; returns its index (the logits index when want_logits)."""
        i = self.n
        raw = self.raw
        raw.token[i] = token
        raw.pos[i] = pos
        raw.n_seq_id[i] = 1
        raw.seq_id[i][0] = seq
        raw.logits[i] = want_logits
        self.n = i + 1
        raw.n_tokens = self.n
        return i

    def close(self) -> None:
        if self.raw is not None:
            C.llama_batch_free(self.raw)
            self.raw = None


class Sampler:
    """A per-request llama.cpp sampler chain built from SamplingParams.

    Order as in llama.cpp's common sampler: logit bias, penalties, grammar, then the
    truncation filters, temperature and the final draw (or greedy).
    """

    def __init__(self, model: Model, params: SamplingParams, seed: int):
        chain_params = C.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self.ptr = C.llama_sampler_chain_init(chain_params)
        self._keep: list[object] = []  # ctypes buffers the chain points into
        add = lambda s: C.llama_sampler_chain_add(self.ptr, s)  # noqa: E731

        if params.logit_bias:
            for token in params.logit_bias:
                if token >= model.n_vocab:
                    self.close()
                    raise InvalidRequest(f"logit_bias names token {token}, but the vocabulary "
                                         f"has {model.n_vocab} tokens", param="logit_bias")
            arr = (C.llama_logit_bias * len(params.logit_bias))()
            for i, (token, bias) in enumerate(params.logit_bias.items()):
                arr[i].token = token
                arr[i].bias = bias
            self._keep.append(arr)
            add(C.llama_sampler_init_logit_bias(model.n_vocab, len(params.logit_bias), arr))
        if (params.repeat_penalty != 1.0 or params.presence_penalty or params.frequency_penalty):
            last_n = params.repeat_last_n
            add(C.llama_sampler_init_penalties(model.n_vocab, last_n, params.repeat_penalty,
                                               params.frequency_penalty, params.presence_penalty))
        if params.grammar:
            _recent_errors.clear()
            grammar = C.llama_sampler_init_grammar(model.vocab, params.grammar.encode(), b"root")
            if not grammar:
                self.close()
                raise InvalidRequest("the grammar could not be parsed: "
                                     + ("; ".join(_recent_errors) or "invalid GBNF"),
                                     param="response_format")
            add(grammar)
        if params.greedy:
            add(C.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(C.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(C.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(C.llama_sampler_init_min_p(params.min_p, 1))
            add(C.llama_sampler_init_temp(params.temperature))
            add(C.llama_sampler_init_dist(seed))

    def sample(self, ctx: Context, index: int) -> int:
        """Draw from the logits at batch index `index` (and accept the token)."""
        return int(C.llama_sampler_sample(self.ptr, ctx.ptr, index))

    def accept(self, tokens: Iterable[int]) -> None:
        """Tell the chain about tokens it did not draw (penalty history, grammar state)."""
        for token in tokens:
            C.llama_sampler_accept(self.ptr, token)

    def close(self) -> None:
        if self.ptr:
            C.llama_sampler_free(self.ptr)
            self.ptr = None


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
