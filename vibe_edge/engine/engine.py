"""Engine: one model, one llama context with N slots, one scheduler thread.

`submit()` does all the checking in the caller's thread (so a bad request fails at once with
a clear error and never reaches the scheduler), then hands a Job to the scheduler.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from vibe_edge.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CTX_PER_SLOT,
    DEFAULT_KV_TYPE,
    DEFAULT_PREFILL_CHUNK_BUSY,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_SLOTS,
    KV_TYPES,
    MIN_BATCH_SIZE,
    MIN_CTX_PER_SLOT,
)
from vibe_edge.engine._llama import (
    Batch,
    Context,
    ContextParams,
    Model,
    Sampler,
    supports_gpu_offload,
    usable_cores,
)
from vibe_edge.engine.backend import LlamaBackend
from vibe_edge.engine.grammar import grammar_for
from vibe_edge.engine.handle import RequestHandle
from vibe_edge.engine.job import Job
from vibe_edge.engine.samples import SampleGroup, vote_pool
from vibe_edge.engine.scheduler import THINK_CLOSE_TEXT, Scheduler
from vibe_edge.engine.speculate import SlotSpeculation
from vibe_edge.errors import ContextLengthExceeded, EngineClosed, InvalidRequest, SettingsError
from vibe_edge.modelfile import inspect_gguf
from vibe_edge.text.language import cjk_advisory
from vibe_edge.text.template import normalize_messages, prompt_prefills_think, render_chat
from vibe_edge.types import (
    EngineStatus,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    ReasoningEnd,
    SamplingParams,
    SpecConfig,
)

log = logging.getLogger("vibe_edge.engine")

# Prompt bounds checked before any rendering or tokenizing (400 past them), so a hostile request
# costs bounded time. Both only refuse what could never fit a slot: a chat message takes at
# least this many tokens in any chat template (a role marker and an end marker)...
MIN_TOKENS_PER_MESSAGE = 2
# ...and no token stands for more text than the vocabulary's longest token (read from the GGUF;
# this is used when the file does not list its tokens).
FALLBACK_MAX_TOKEN_BYTES = 256


@dataclass(frozen=True)
class EngineConfig:
    """How to run a model. The hardware plan (`vibe-edge doctor`) fills these by default."""

    model_path: str | Path
    n_slots: int = DEFAULT_SLOTS
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT
    threads: int | None = None        # None: all usable cores
    threads_batch: int | None = None  # None: same as threads
    gpu_layers: int = 0               # -1: all
    kv_type: str = DEFAULT_KV_TYPE
    flash_attn: bool | None = None    # None: llama.cpp decides
    batch_size: int = DEFAULT_BATCH_SIZE
    prefill_chunk_busy: int = DEFAULT_PREFILL_CHUNK_BUSY
    queue_size: int = DEFAULT_QUEUE_SIZE
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    warmup: bool = True
    name: str | None = None
    spec: SpecConfig = SpecConfig()  # speculative decoding; requests may turn it on or off

    def validate(self) -> None:
        checks = [
            (self.n_slots >= 1, "slots must be >= 1"),
            (self.ctx_per_slot >= MIN_CTX_PER_SLOT, f"context per slot must be >= {MIN_CTX_PER_SLOT}"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (self.batch_size >= MIN_BATCH_SIZE, f"batch size must be >= {MIN_BATCH_SIZE}"),
            (self.prefill_chunk_busy >= 1, "prefill chunk must be >= 1"),
            (self.queue_size >= 0, "queue size must be >= 0"),
            (self.request_timeout_s > 0, "request timeout must be > 0"),
            (self.kv_type in KV_TYPES, f"kv type must be one of {', '.join(KV_TYPES)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        try:
            self.spec.validate()
        except InvalidRequest as exc:
            raise SettingsError(exc.message, param=exc.param) from None


class Engine:
    def __init__(self, config: EngineConfig):
        config.validate()
        self.config = config
        path = str(Path(config.model_path).expanduser())
        facts = inspect_gguf(path)  # clear errors for non-GGUF / truncated files, before llama.cpp
        self._model = Model(path, gpu_layers=config.gpu_layers)
        threads = config.threads or usable_cores()
        try:
            self._ctx = Context(self._model, ContextParams(
                n_seq=config.n_slots, ctx_per_seq=config.ctx_per_slot, n_batch=config.batch_size,
                threads=threads, threads_batch=config.threads_batch or threads,
                kv_type=config.kv_type, flash_attn=config.flash_attn))
        except Exception:
            self._model.close()
            raise
        model = self._model
        thinks = all(len(model.tokenize(t, add_special=False)) == 1 for t in ("<think>", "</think>"))
        self.info = ModelInfo(
            name=config.name or facts.name or Path(path).stem,
            path=path,
            architecture=facts.architecture,
            n_params=model.n_params,
            size_bytes=model.size_bytes,
            n_ctx_train=model.n_ctx_train,
            chat_template=model.chat_template(),
            n_slots=config.n_slots,
            ctx_per_slot=config.ctx_per_slot,
            thinks=thinks,
            gpu_layers=config.gpu_layers,
            gpu_offload=supports_gpu_offload(),
        )
        self._bos_text = model.token_text(model.special_token("bos")) if model.add_bos else ""
        self._eos_text = model.token_text(model.special_token("eos"))
        self._eog: list[int] | None = None
        self._think_open = model.tokenize("<think>", add_special=False)[0] if thinks else None
        if config.warmup:
            self._warm_up()
        self._scheduler = Scheduler(
            LlamaBackend(model, self._ctx), batch_size=config.batch_size,
            prefill_chunk_busy=config.prefill_chunk_busy, queue_size=config.queue_size,
            close_tokens=model.tokenize(THINK_CLOSE_TEXT, add_special=False, parse_special=True),
            spec=config.spec)
        self._scheduler.start()
        self.max_messages = max(1, config.ctx_per_slot // MIN_TOKENS_PER_MESSAGE)
        self.max_prompt_chars = config.ctx_per_slot * (facts.max_token_bytes or FALLBACK_MAX_TOKEN_BYTES)
        # submit() reads the model (template, tokenizer, grammar compile) outside the scheduler
        # thread, concurrently with other submits: close() waits for them before freeing it.
        self._submits = _InFlight()

    def _warm_up(self) -> None:
        """One tiny decode so the first user does not pay for lazy allocations and page-ins."""
        batch = Batch(2)
        try:
            first = self._model.special_token("bos")
            batch.add(first if first >= 0 else 0, 0, 0, True)
            self._ctx.decode(batch)
        finally:
            batch.close()
            self._ctx.clear()

    # -- public API -----------------------------------------------------------------------------
    def render(self, request: GenerationRequest) -> str:
        """The exact prompt text a request turns into (chat template applied)."""
        if request.messages is None:
            return request.prompt or ""
        messages = normalize_messages(request.messages)
        return render_chat(messages, template=self.info.chat_template, bos_token=self._bos_text,
                           eos_token=self._eos_text, add_generation_prompt=True)

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return self._model.tokenize(text, add_special=add_special and self._model.add_bos)

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self._model.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def eog_tokens(self) -> list[int]:
        """Every token id that ends generation (for logit bias, e.g. to force a length)."""
        if self._eog is None:
            self._eog = [t for t in range(self._model.n_vocab) if self._model.is_eog(t)]
        return list(self._eog)

    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Queue a request. Raises InvalidRequest, ContextLengthExceeded, EngineBusy or
        EngineClosed at once; otherwise returns a handle that streams its events."""
        request.validate()
        if request.n > self.config.n_slots:
            raise InvalidRequest(
                f"n = {request.n} samples need {request.n} slots at once; this engine has "
                f"{self.config.n_slots}", hint="ask for fewer samples, or start with more --slots",
                param="n")
        self._check_size(request)
        with self._submits.enter():
            return self._submit(request)

    def _check_size(self, request: GenerationRequest) -> None:
        """Refuse, before any work, a prompt that cannot fit a slot however it tokenizes."""
        ctx = self.config.ctx_per_slot
        if request.messages is not None:
            if len(request.messages) > self.max_messages:
                raise ContextLengthExceeded(
                    f"the conversation has {len(request.messages):,} messages; a slot of {ctx} "
                    f"tokens holds at most {self.max_messages:,} (each takes at least "
                    f"{MIN_TOKENS_PER_MESSAGE} tokens)",
                    hint="send fewer messages (drop or summarise old turns)", param="messages")
            chars = sum(_content_chars(m) for m in request.messages)
        else:
            chars = len(request.prompt or "")
        if chars > self.max_prompt_chars:
            raise ContextLengthExceeded(
                f"the prompt is {chars:,} characters; a slot of {ctx} tokens holds at most "
                f"{self.max_prompt_chars:,} characters of this model's text, so it cannot fit",
                hint="shorten the prompt, or start with a larger context per slot (--ctx)",
                param="messages" if request.messages is not None else "prompt")

    def _submit(self, request: GenerationRequest) -> RequestHandle:
        prompt = self.render(request)
        start_in_reasoning = prompt_prefills_think(prompt)
        reasoning_end = None
        notices = []
        if request.reasoning.thinking_budget == 0 and start_in_reasoning:
            # No thinking asked for, and the template opened the think block itself: close it
            # in the prompt so the model starts on its answer. (A model that opens the block
            # itself gets it closed right after its `<think>` by the scheduler's budget check.)
            prompt = prompt.rstrip() + THINK_CLOSE_TEXT
            start_in_reasoning = False
            reasoning_end = ReasoningEnd.BUDGET
            notices.append(("thinking_budget", "Thinking budget of 0 tokens: the think block was "
                                               "closed before the model began, so it answers without reasoning."))
        # Chat templates write their own BOS when the model wants one; a raw prompt gets it here.
        tokens = self._model.tokenize(prompt, add_special=request.messages is None and self._model.add_bos)
        if not tokens:
            raise InvalidRequest("the prompt is empty", param="prompt" if request.prompt is not None else "messages")
        room = self.config.ctx_per_slot - len(tokens)
        if room < 1:
            raise ContextLengthExceeded(
                f"the prompt is {len(tokens)} tokens but a slot holds {self.config.ctx_per_slot} "
                "tokens (prompt and answer together)",
                hint="shorten the conversation, or start with a larger context per slot (--ctx) "
                     "and fewer slots (--slots)",
                param="messages" if request.messages is not None else "prompt",
            )
        sampling = request.sampling
        if sampling.structured_output is not None:
            sampling = replace(sampling, grammar=grammar_for(sampling), structured_output=None)
        # seed + i per sample: a seeded request is repeatable, and its samples still differ.
        seed = sampling.seed if sampling.seed is not None else random.getrandbits(32)
        advisory = cjk_advisory(_last_user_text(request))
        if advisory:
            notices.append(("cjk_prompt", advisory))
        timeout = request.deadline_s or self.config.request_timeout_s
        deadline = time.monotonic() + timeout
        handle = RequestHandle(request.request_id, on_cancel=self._scheduler.wake)
        speculative = self.config.spec.enabled if request.speculative is None else request.speculative
        group = None
        if request.n > 1:
            group = SampleGroup(handle, request.n, vote=request.vote, wake=self._scheduler.wake,
                                pool=vote_pool() if request.vote else None)
        jobs: list[Job] = []
        try:
            for i in range(request.n):
                own = request.seeds[i] if request.seeds is not None else (seed + i) % 2**32
                samplers = self._samplers(sampling, own, start_in_reasoning)
                jobs.append(Job(
                    request=request,
                    handle=handle if group is None else group.handles[i],
                    prompt_tokens=tokens,
                    sampler=samplers[0],
                    answer_sampler=samplers[1],
                    think_open=self._think_open,
                    max_new_tokens=min(request.max_tokens or room, room),
                    deadline=deadline,
                    start_in_reasoning=start_in_reasoning,
                    reasoning_end=reasoning_end,
                    notices=notices if i == 0 else [],  # said once, by the leading sample
                    group=group,
                    sample_index=i,
                    spec=SlotSpeculation(self.config.spec) if speculative and not sampling.grammar else None,
                ))
            if group is not None:
                group.jobs = jobs
            self._scheduler.submit(jobs[0])
        except Exception:
            for job in jobs:
                job.close_samplers()
            raise
        return handle

    def _samplers(self, sampling: SamplingParams, seed: int,
                  start_in_reasoning: bool) -> tuple[Sampler, Sampler | None]:
        """(sampler, answer sampler). A grammar (structured output) waits for the answer when
        the model may think first; otherwise it applies from the first token."""
        if not sampling.grammar or not (self.info.thinks or start_in_reasoning):
            return Sampler(self._model, sampling, seed), None  # raises on a bad grammar/bias
        answer = Sampler(self._model, sampling, seed)
        try:
            return Sampler(self._model, replace(sampling, grammar=None), seed), answer
        except Exception:
            answer.close()
            raise

    def generate(self, request: GenerationRequest, timeout: float | None = None) -> GenerationResult:
        return self.submit(request).result(timeout)

    def reset_cache(self) -> None:
        """Forget every idle slot's cached prefix (benchmarks measure cold prefill with it)."""
        self._scheduler.reset_idle_cache()

    def status(self) -> EngineStatus:
        busy, queued, kv_used = self._scheduler.counts()
        return EngineStatus(
            n_slots=self.config.n_slots, busy_slots=busy, queued=queued,
            queue_size=self.config.queue_size, kv_used_tokens=kv_used,
            kv_capacity_tokens=self.config.n_slots * self.config.ctx_per_slot,
        )

    def close(self, grace_s: float = 0.0) -> None:
        """Stop taking requests; let running ones finish for up to grace_s, cancel the rest."""
        if not self._submits.close():
            return
        self._scheduler.stop_accepting()
        deadline = time.monotonic() + grace_s
        while grace_s > 0 and not self._scheduler.idle() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._scheduler.cancel_all()
        self._scheduler.shutdown()
        # A submit still tokenizing (bounded by the prompt limits) is refused when it reaches
        # the scheduler; the model may only be freed once it has let go of it.
        self._submits.wait_idle()
        self._scheduler.batch.close()
        self._ctx.close()
        self._model.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _InFlight:
    """Counts submits in progress. Submits never wait for each other (one slow tokenize or
    grammar compile holds up nobody); close() refuses new ones, then waits for the count to
    reach zero before the model is freed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self.closed = False

    @contextmanager
    def enter(self) -> Iterator[None]:
        with self._cond:
            if self.closed:
                raise EngineClosed("the engine is closed", hint="open a new engine")
            self._count += 1
        try:
            yield
        finally:
            with self._cond:
                self._count -= 1
                if self._count == 0:
                    self._cond.notify_all()

    def close(self) -> bool:
        """Refuse new submits; False when already closed."""
        with self._cond:
            if self.closed:
                return False
            self.closed = True
            return True

    def wait_idle(self) -> None:
        with self._cond:
            while self._count:
                self._cond.wait()


def _content_chars(message: object) -> int:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text", "")) for p in content
                   if isinstance(p, dict) and isinstance(p.get("text", ""), str))
    return 0


def _last_user_text(request: GenerationRequest) -> str:
    if request.messages is None:
        return request.prompt or ""
    for message in reversed(request.messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""
