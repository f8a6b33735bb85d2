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
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import llama_cpp as C
import numpy as np

from vibe_edge.defaults import KV_TYPES
from vibe_edge.engine.grammar import check_gbnf
from vibe_edge.errors import InvalidRequest, ModelFileError
from vibe_edge.types import SamplingParams

log = logging.getLogger("vibe_edge.llama")

# defaults.KV_TYPES -> llama.cpp's ggml type ids.
_GGML_KV_TYPES = {"f16": C.GGML_TYPE_F16, "q8_0": C.GGML_TYPE_Q8_0, "q4_0": C.GGML_TYPE_Q4_0}
assert set(_GGML_KV_TYPES) == set(KV_TYPES)

# llama.cpp splits a text at special tokens with a list walk that is quadratic in their count
# (20,000 chat messages took 20 s). Text holding more than this many is tokenized in pieces
# that each start at a special token, which gives the same tokens in linear time.
SPECIAL_TOKENS_PER_PIECE = 32
# Below this many characters the quadratic part is negligible: one call, no scan.
PIECEWISE_MIN_CHARS = 4096
# Vocabularies with more special tokens than this are not scanned for piecewise tokenizing.
MAX_SPECIALS_SCANNED = 512
_SPECIAL_ATTRS = C.LLAMA_TOKEN_ATTR_CONTROL | C.LLAMA_TOKEN_ATTR_USER_DEFINED | C.LLAMA_TOKEN_ATTR_UNKNOWN

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


def usable_cores() -> int:
    """CPUs this process may run on (containers and taskset allow fewer than the machine has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def supports_gpu_offload() -> bool:
    return bool(C.llama_supports_gpu_offload())


def quantize_model(src: str, dst: str, *, ftype: int, threads: int, max_buf_bytes: int | None = None) -> bool:
    """llama.cpp's own quantizer (llama_model_quantize): `src` to `dst` as LLAMA_FTYPE `ftype`.
    Blocking and uninterruptible: callers run it in a child process they can kill. llama.cpp's
    log stays on stderr (no init_backend()): its per-tensor lines are the caller's progress."""
    C.llama_backend_init()
    params = C.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    if max_buf_bytes is not None and hasattr(params, "max_buf_size"):
        # llama.cpp holds this many bytes of rows (source, f32 copy, result) at once; its 8 GiB
        # default takes VibeThinker's whole 152k-row embedding in one slab (~1.6 GB of RAM).
        params.max_buf_size = max_buf_bytes
    return C.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) == 0


def system_info() -> str:
    """llama_print_system_info(): the features this build was compiled for ("AVX2 = 1 | ...")."""
    init_backend()  # the CPU backend registers its features when loaded
    raw = C.llama_print_system_info()
    return raw.decode("utf-8", errors="replace").strip() if raw else ""


# ---------------------------------------------------------------------------------------------


class Model:
    """A loaded GGUF: weights, vocabulary and metadata."""

    def __init__(self, path: str, *, gpu_layers: int = 0, vocab_only: bool = False):
        """vocab_only: load the vocabulary and metadata without the weights (to tokenize)."""
        init_backend()
        params = C.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        params.vocab_only = vocab_only
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
        self.add_eos = bool(C.llama_vocab_get_add_eos(self.vocab))
        self._piece_cache: dict[int, bytes] = {}
        self._eog_cache: dict[int, bool] = {}
        self._specials: tuple[re.Pattern[str], frozenset[str]] | None | bool = False  # False: not built
        self._specials_lock = threading.Lock()

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
        if parse_special and len(text) >= PIECEWISE_MIN_CHARS:
            pieces = self._split_at_specials(text)
            if len(pieces) > 1:
                tokens = [self.special_token("bos")] if add_special and self.add_bos else []
                for piece in pieces:
                    tokens += self._tokenize(piece, add_special=False, parse_special=True)
                if add_special and self.add_eos:
                    tokens.append(self.special_token("eos"))
                return tokens
        return self._tokenize(text, add_special=add_special, parse_special=parse_special)

    def _split_at_specials(self, text: str) -> list[str]:
        """Cut `text` into pieces of about SPECIAL_TOKENS_PER_PIECE special tokens, each piece
        (after the first) starting at a special token.

        Tokenizing the pieces one by one gives exactly the tokens of the whole text: llama.cpp
        itself splits there first and tokenizes the text between special tokens on its own.
        Never cut before a token that strips the whitespace to its left (LSTRIP): that whitespace
        is in the previous piece. Vocabularies where one special token's end can be another's
        start (so matches could overlap) are never cut."""
        specials = self._special_matcher()
        if specials is None:
            return [text]
        pattern, lstrip = specials
        cuts = [0]
        count = 0
        for match in pattern.finditer(text):
            count += 1
            if count > SPECIAL_TOKENS_PER_PIECE and match.group() not in lstrip and match.start() > cuts[-1]:
                cuts.append(match.start())
                count = 1
        if len(cuts) == 1:
            return [text]
        return [text[a:b] for a, b in zip(cuts, cuts[1:] + [len(text)])]

    def _special_matcher(self) -> tuple[re.Pattern[str], frozenset[str]] | None:
        if self._specials is False:
            with self._specials_lock:
                if self._specials is False:
                    self._specials = self._build_special_matcher()
        return self._specials  # type: ignore[return-value]

    def _build_special_matcher(self) -> tuple[re.Pattern[str], frozenset[str]] | None:
        """The special tokens llama.cpp matches in text (control, user-defined, unknown), as one
        regex trying the longest first, as llama.cpp does."""
        texts: set[str] = set()
        lstrip: set[str] = set()
        for token in range(self.n_vocab):
            attr = int(C.llama_vocab_get_attr(self.vocab, token))
            if not attr & _SPECIAL_ATTRS:
                continue
            raw = C.llama_vocab_get_text(self.vocab, token) or b""
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return None  # cannot be matched in Python text exactly: never cut
            if text:
                texts.add(text)
                if attr & C.LLAMA_TOKEN_ATTR_LSTRIP:
                    lstrip.add(text)
            if len(texts) > MAX_SPECIALS_SCANNED:
                return None
        if not texts:
            return None
        ordered = sorted(texts, key=len, reverse=True)
        for a in ordered:  # an overlap ("x<b" and "<b>c") would make matches ambiguous
            for b in ordered:
                if a != b and any(a.endswith(b[:k]) for k in range(1, min(len(a), len(b)))):
                    return None
        return re.compile("|".join(map(re.escape, ordered))), frozenset(lstrip)

    def _tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
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
    n_ubatch: int | None = None     # None: min(n_batch, 512)


class Context:
    """One llama context holding `n_seq` independent sequences (the engine's slots).

    The KV cache is not unified: each sequence owns `ctx_per_seq` cells, so one user's long
    chat can never evict another's, and attention skips other sequences' cells.
    """

    def __init__(self, model: Model, p: ContextParams):
        params = C.llama_context_default_params()
        params.n_ctx = p.n_seq * p.ctx_per_seq
        params.n_batch = p.n_batch
        params.n_ubatch = p.n_ubatch or min(p.n_batch, 512)
        params.n_seq_max = p.n_seq
        params.n_threads = p.threads
        params.n_threads_batch = p.threads_batch
        params.kv_unified = False
        params.no_perf = True
        params.type_k = _GGML_KV_TYPES[p.kv_type]
        params.type_v = _GGML_KV_TYPES[p.kv_type]
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

    def logits_at(self, index: int) -> np.ndarray:
        """A copy of the logits at batch index `index` of the last decode."""
        ptr = C.llama_get_logits_ith(self.ptr, index)
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,)).copy()

    def logits(self, n_outputs: int) -> np.ndarray:
        """The logits of the last decode's outputs (the tokens added with logits), in batch
        order: an (n_outputs, n_vocab) float32 copy."""
        ptr = C.llama_get_logits(self.ptr)
        n_vocab = self.model.n_vocab
        return np.ctypeslib.as_array(ptr, shape=(n_outputs * n_vocab,)).reshape(n_outputs, n_vocab).copy()

    def seq_copy(self, src: int, dst: int, start: int = -1, end: int = -1) -> None:
        """Make positions [start, end) of `src` belong to `dst` too (-1: open bound). With a
        non-unified cache the cells are copied into dst's own stream."""
        C.llama_memory_seq_cp(self.memory, src, dst, start, end)

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


# llama.cpp parses a grammar recursively (about 440 bytes of stack per nested group). Grammars
# are compiled on a thread with this much stack, whatever the platform gives threads by default
# (8 MiB on glibc, 128 KiB on musl), so the nesting limit in grammar.py keeps its margin.
GRAMMAR_COMPILE_STACK_BYTES = 8 * 1024 * 1024
_stack_size_lock = threading.Lock()
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
assert _TOKEN_DATA.itemsize == ctypes.sizeof(C.llama_token_data)


def parses_unbounded(model: Model, grammar: str) -> bool:
    """Whether llama.cpp's own parser takes `grammar`, without vibe-edge's bounds (check_gbnf)
    and on the calling thread's stack: for measuring those bounds (bench/grammar_limits.py),
    never for requests. A deep enough grammar overflows the stack and kills the process."""
    init_backend()
    sampler = C.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
    if sampler:
        C.llama_sampler_free(sampler)
    return bool(sampler)


def compile_grammar(model: Model, grammar: str) -> ctypes.c_void_p:
    """A llama.cpp grammar sampler for GBNF text (root rule "root"), or InvalidRequest.

    The text is bounded first (check_gbnf), then parsed on a thread of known stack size; the
    calling thread (a server worker, never the scheduler) waits for it."""
    check_gbnf(grammar)
    result: list[object] = []

    def compile_() -> None:
        try:
            result.append(C.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root"))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result.append(exc)

    _recent_errors.clear()
    with _stack_size_lock:
        previous = threading.stack_size(GRAMMAR_COMPILE_STACK_BYTES)
        try:
            thread = threading.Thread(target=compile_, name="vibe-edge-grammar", daemon=True)
            thread.start()
        finally:
            threading.stack_size(previous)
    thread.join()
    outcome = result[0] if result else None
    if isinstance(outcome, BaseException):
        raise outcome
    if not outcome:
        raise InvalidRequest("the grammar could not be parsed: "
                             + ("; ".join(_recent_errors) or "invalid GBNF"), param="response_format")
    return outcome  # type: ignore[return-value]


class Sampler:
    """A per-request llama.cpp sampler chain built from SamplingParams.

    Order as in llama.cpp's common sampler: logit bias, penalties, then the truncation filters,
    temperature and the final draw (or greedy). A grammar is kept out of the chain and checked
    first against the one token the chain drew (as llama-server does): checking all 49k-152k
    tokens of the vocabulary against a grammar costs 20-400 ms per token, on the scheduler
    thread every other slot waits for, while one token costs microseconds. Only when the drawn
    token breaks the grammar is the vocabulary filtered and the token drawn again, which gives
    exactly the grammar-constrained distribution (p(t) + (1 - Z) p(t) / Z = p(t) / Z).
    """

    def __init__(self, model: Model, params: SamplingParams, seed: int):
        chain_params = C.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self.ptr = C.llama_sampler_chain_init(chain_params)
        self.grammar = None
        self.n_vocab = model.n_vocab
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
            try:
                self.grammar = compile_grammar(model, params.grammar)
            except BaseException:
                self.close()
                raise
            self._candidates = np.zeros(model.n_vocab, dtype=_TOKEN_DATA)
            self._ids = np.arange(model.n_vocab, dtype="<i4")
            self._one = (C.llama_token_data * 1)()
            self._held: np.ndarray | None = None
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
        token = self.sample_fast(ctx, index)
        return token if token is not None else self.sample_slow()

    def sample_fast(self, ctx: Context, index: int) -> int | None:
        """Draw a token, or None when the grammar refused the drawn one: then sample_slow()
        filters the vocabulary and draws again, from a copy of these logits, so it may run on
        another thread while the context goes on decoding the other slots."""
        if self.grammar is None:
            return int(C.llama_sampler_sample(self.ptr, ctx.ptr, index))
        logits = np.ctypeslib.as_array(C.llama_get_logits_ith(ctx.ptr, index), shape=(self.n_vocab,))
        token = self._draw(logits, constrained=False)
        if self._allowed(token):
            self._accept(token)
            return token
        self._held = np.array(logits)  # the context's buffer is overwritten by the next decode
        return None

    def sample_slow(self) -> int:
        token = self._draw(self._held, constrained=True)
        self._held = None
        self._accept(token)
        return token

    def _accept(self, token: int) -> None:
        C.llama_sampler_accept(self.grammar, token)
        C.llama_sampler_accept(self.ptr, token)

    def _draw(self, logits: np.ndarray, *, constrained: bool) -> int:
        cand = self._candidates
        cand["id"] = self._ids
        cand["logit"] = logits
        cand["p"] = 0.0
        data = cand.ctypes.data_as(ctypes.POINTER(C.llama_token_data))
        arr = C.llama_token_data_array(data, self.n_vocab, -1, False)
        if constrained:
            C.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        C.llama_sampler_apply(self.ptr, ctypes.byref(arr))
        if not 0 <= arr.selected < arr.size:
            raise RuntimeError("the sampler chain selected no token")
        return int(arr.data[arr.selected].id)

    def _allowed(self, token: int) -> bool:
        one = self._one
        one[0].id, one[0].logit, one[0].p = token, 1.0, 0.0
        arr = C.llama_token_data_array(one, 1, -1, False)
        C.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        return one[0].logit != float("-inf")

    def accept(self, tokens: Iterable[int]) -> None:
        """Tell the chain about tokens it did not draw (penalty history, grammar state)."""
        for token in tokens:
            C.llama_sampler_accept(self.ptr, token)
            if self.grammar is not None:
                C.llama_sampler_accept(self.grammar, token)

    def close(self) -> None:
        if self.ptr:
            C.llama_sampler_free(self.ptr)
            self.ptr = None
        if self.grammar:
            C.llama_sampler_free(self.grammar)
            self.grammar = None
