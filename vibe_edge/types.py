"""The engine's public vocabulary: what a caller submits, what it gets back, and the engine
as its users see it (the `EngineAPI` protocol).

A leaf module (no llama.cpp, nothing of vibe-edge but errors and defaults): the server, the
TUI, the request policy and the text helpers import it freely. The event stream of one
request is:

    Started -> (TextDelta | Notice)* -> Finished

`Finished` always comes last, exactly once, whatever happened (stop, length, cancel, timeout,
an engine error), so a consumer can loop until it sees it.

A request for `n` > 1 samples streams all of them on one handle: each sample has its own
`Started`, deltas and notices (their `sample` field says whose) and a `SampleFinished`; the one
`Finished` comes after the last of them and carries every sample's result (and the vote).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol

from vibe_edge.defaults import (
    DEFAULT_ANSWER_RESERVE,
    DEFAULT_LOOP_GUARD,
    DEFAULT_SPEC,
    DEFAULT_SPEC_BATCH_TOKENS_CPU,
    DEFAULT_SPEC_MAX_DRAFT,
    DEFAULT_SPEC_NGRAM_MAX,
    DEFAULT_SPEC_NGRAM_MIN,
    MAX_SAMPLES,
    MAX_SPEC_DRAFT,
    MAX_SPEC_NGRAM,
    MAX_STOP_STRINGS,
)
from vibe_edge.errors import InvalidRequest

Channel = Literal["reasoning", "answer"]

_request_ids = itertools.count(1)


def _next_request_id() -> str:
    return f"req-{next(_request_ids)}"


@dataclass(frozen=True)
class StructuredOutput:
    """The answer must be JSON: any JSON object when `schema` is None, else JSON that validates
    against `schema` (a JSON Schema object). The engine turns it into a grammar with llama.cpp's
    own converter, so the dialect always matches the llama.cpp that enforces it."""

    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling. Defaults follow llama.cpp's; presets override them.

    temperature <= 0 means greedy decoding. top_k = 0 and top_p = 1 and min_p = 0 turn those
    filters off. seed None draws a fresh seed per request.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    grammar: str | None = None  # GBNF text, root rule "root" (structured output)
    # JSON output (OpenAI's response_format): the engine builds the grammar from it.
    structured_output: StructuredOutput | None = None

    def validate(self) -> None:
        """Raise InvalidRequest naming the first value out of range."""
        if self.grammar is not None and self.structured_output is not None:
            raise InvalidRequest("give a grammar or a structured output format, not both",
                                 param="response_format")
        _check_range("temperature", self.temperature, 0.0, 5.0)
        _check_range("top_p", self.top_p, 0.0, 1.0, low_open=True)
        _check_range("min_p", self.min_p, 0.0, 1.0)
        _check_range("repeat_penalty", self.repeat_penalty, 0.0, 10.0, low_open=True)
        _check_range("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise InvalidRequest(f"top_k must be an integer >= 0 (0 turns it off), got {self.top_k!r}",
                                 param="top_k")
        if not isinstance(self.repeat_last_n, int) or self.repeat_last_n < -1:
            raise InvalidRequest(f"repeat_last_n must be an integer >= -1, got {self.repeat_last_n!r}",
                                 param="repeat_last_n")
        if self.seed is not None and (not isinstance(self.seed, int) or not 0 <= self.seed < 2**32):
            raise InvalidRequest(f"seed must be an integer in [0, 2^32), got {self.seed!r}", param="seed")
        for token, bias in self.logit_bias.items():
            if not isinstance(token, int) or token < 0:
                raise InvalidRequest(f"logit_bias keys must be token ids >= 0, got {token!r}",
                                     param="logit_bias")
            _check_range("logit_bias", bias, -100.0, 100.0)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


def _check_range(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise InvalidRequest(f"{name} must be a number in {bracket}{low:g}, {high:g}], got {value!r}",
                             param=name)


@dataclass(frozen=True)
class ReasoningOptions:
    """How the engine treats a `<think>` block.

    thinking_budget: reasoning tokens allowed before the engine closes the block itself and lets
    the model answer (None: no budget; 0: no thinking, the block is closed before it starts, as
    llama.cpp's `--reasoning-budget 0`). loop_guard: close the block early when the trace
    repeats itself.
    """

    thinking_budget: int | None = None
    loop_guard: bool = DEFAULT_LOOP_GUARD

    def validate(self) -> None:
        if self.thinking_budget is not None and (
            not isinstance(self.thinking_budget, int) or self.thinking_budget < 0
        ):
            raise InvalidRequest(
                f"thinking_budget must be a number of tokens >= 0 (0: no thinking), got {self.thinking_budget!r}",
                param="thinking_budget",
            )


def thinking_budget_ceiling(max_tokens: int) -> int:
    """The largest thinking budget that still leaves room to answer within `max_tokens`: the
    answer keeps DEFAULT_ANSWER_RESERVE tokens, or a quarter of a small limit. The request
    policy applies it to default budgets; the engine enforces it for every request, against
    the room actually left after the prompt."""
    reserve = min(DEFAULT_ANSWER_RESERVE, max_tokens // 4)
    return max(1, max_tokens - reserve)


@dataclass
class GenerationRequest:
    """One generation. Give exactly one of `prompt` (raw text) or `messages` (chat).

    messages are OpenAI-style dicts ({"role", "content"}) rendered with the model's own chat
    template. max_tokens None means "until the slot's context is full". deadline_s counts from
    submission; None takes the engine's default.

    n: samples of this one prompt (self-consistency). The prompt is evaluated once and its KV
    copied into the other samples' slots; each sample draws with its own seed (seed + i when a
    seed is given). They share the deadline and cancellation. n may not exceed the engine's
    slots. vote: pick the majority final answer over the samples (engine/samples.py), stopping
    the rest early once they can no longer change the winner. seeds: one seed per sample, in
    place of seed + i (the eval derives each sample's seed from its problem and number).
    """

    prompt: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    stop: Sequence[str] = ()
    reasoning: ReasoningOptions = field(default_factory=ReasoningOptions)
    deadline_s: float | None = None
    # Speculative decoding for this request: None follows the engine's SpecConfig.enabled.
    speculative: bool | None = None
    request_id: str = field(default_factory=_next_request_id)
    n: int = 1
    vote: bool = False
    seeds: Sequence[int] | None = None

    def validate(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise InvalidRequest("give exactly one of prompt or messages", param="messages")
        if not isinstance(self.n, int) or isinstance(self.n, bool) or not 1 <= self.n <= MAX_SAMPLES:
            raise InvalidRequest(f"n must be an integer from 1 to {MAX_SAMPLES}, got {self.n!r}",
                                 param="n")
        if self.seeds is not None and (
                len(self.seeds) != self.n
                or any(not isinstance(s, int) or not 0 <= s < 2**32 for s in self.seeds)):
            raise InvalidRequest(f"seeds must be {self.n} integers in [0, 2^32), one per sample",
                                 param="seeds")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise InvalidRequest(f"max_tokens must be a positive integer, got {self.max_tokens!r}",
                                 param="max_tokens")
        if isinstance(self.stop, str):
            raise InvalidRequest("stop must be a list of strings", param="stop")
        if len(self.stop) > MAX_STOP_STRINGS or any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidRequest(f"stop takes at most {MAX_STOP_STRINGS} non-empty strings", param="stop")
        if self.deadline_s is not None and not (self.deadline_s > 0):
            raise InvalidRequest(f"deadline_s must be > 0 seconds, got {self.deadline_s!r}",
                                 param="deadline_s")
        if self.speculative is not None and not isinstance(self.speculative, bool):
            raise InvalidRequest(f"speculative must be true or false, got {self.speculative!r}",
                                 param="speculative")
        self.sampling.validate()
        self.reasoning.validate()


@dataclass(frozen=True)
class SpecConfig:
    """Speculative decoding: draft up to `max_draft` tokens per step from the longest suffix
    (`ngram_max` down to `ngram_min` tokens) of a slot's context that occurred earlier in it,
    and verify them in the step's one batch. `batch_tokens`: drafts are only added while the
    step's batch holds fewer tokens (the hardware plan's figure: small on a CPU, where each
    token in a batch costs, larger on a GPU)."""

    enabled: bool = DEFAULT_SPEC
    max_draft: int = DEFAULT_SPEC_MAX_DRAFT
    ngram_min: int = DEFAULT_SPEC_NGRAM_MIN
    ngram_max: int = DEFAULT_SPEC_NGRAM_MAX
    batch_tokens: int = DEFAULT_SPEC_BATCH_TOKENS_CPU
    # (tokens, seconds) of a decode step, in place of measuring them (engine/step_cost.py):
    # draft lengths then depend on nothing of the host, e.g. to repeat a run elsewhere.
    step_costs: tuple[tuple[int, float], ...] | None = None

    def validate(self) -> None:
        if not 1 <= self.max_draft <= MAX_SPEC_DRAFT:
            raise InvalidRequest(f"spec max draft must be 1..{MAX_SPEC_DRAFT}, got {self.max_draft}",
                                 param="spec_max_draft")
        if not 1 <= self.ngram_min <= self.ngram_max <= MAX_SPEC_NGRAM:
            raise InvalidRequest(f"spec n-gram sizes must satisfy 1 <= min <= max <= {MAX_SPEC_NGRAM}, "
                                 f"got {self.ngram_min}..{self.ngram_max}", param="spec_ngram_min")
        if self.batch_tokens < 1:
            raise InvalidRequest(f"spec batch tokens must be >= 1, got {self.batch_tokens}",
                                 param="spec_batch_tokens")
        if self.step_costs is not None and (
                not self.step_costs or any(n < 1 or not seconds > 0 for n, seconds in self.step_costs)):
            raise InvalidRequest("spec step costs are (tokens >= 1, seconds > 0) pairs",
                                 param="spec_step_costs")


class FinishReason(str, Enum):
    STOP = "stop"            # end-of-generation token or a stop string
    LENGTH = "length"        # max_tokens reached or the slot's context is full
    CANCELLED = "cancelled"  # the caller cancelled (client gone, Esc pressed)
    TIMEOUT = "timeout"      # the request's deadline passed
    ERROR = "error"          # the engine failed this request; `error` says why


class ReasoningEnd(str, Enum):
    """Who closed the think block."""

    MODEL = "model"    # the model wrote </think> itself
    BUDGET = "budget"  # the thinking budget ran out and the engine closed it
    LOOP = "loop"      # the loop guard saw the trace repeat and the engine closed it


@dataclass
class RequestStats:
    """What every request reports. Times in milliseconds, rates in tokens per second."""

    queue_ms: float = 0.0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    prefill_tps: float | None = None
    decode_tps: float | None = None
    draft_tokens: int = 0     # tokens speculative decoding proposed...
    accepted_tokens: int = 0  # ...and how many of them the sampler agreed with

    @property
    def completion_tokens(self) -> int:
        return self.reasoning_tokens + self.answer_tokens

    @property
    def acceptance(self) -> float | None:
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue_ms": round(self.queue_ms, 1),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 1),
            "total_ms": round(self.total_ms, 1),
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "answer_tokens": self.answer_tokens,
            "completion_tokens": self.completion_tokens,
            "prefill_tps": None if self.prefill_tps is None else round(self.prefill_tps, 2),
            "decode_tps": None if self.decode_tps is None else round(self.decode_tps, 2),
            "draft_tokens": self.draft_tokens,
            "accepted_tokens": self.accepted_tokens,
            "acceptance": None if self.acceptance is None else round(self.acceptance, 3),
        }


@dataclass
class GenerationResult:
    request_id: str
    text: str            # everything generated, think block included, stop string excluded
    reasoning: str       # inside <think>...</think>, tags excluded
    answer: str          # after the think block (or everything, for a model that does not think)
    finish_reason: FinishReason
    stats: RequestStats
    reasoning_end: ReasoningEnd | None = None
    boxed: str | None = None  # the last \boxed{...} of the answer
    error: str | None = None
    sample: int = 0  # which of the request's samples this is
    # n > 1: every sample's result, by sample index (the fields above are those of the winner
    # when voting, else of sample 0), and the vote when one was asked for.
    samples: list[GenerationResult] | None = None
    vote: VoteOutcome | None = None


@dataclass
class VoteGroup:
    """Samples whose final answers are equivalent; `answer` is how the first of them wrote it."""

    answer: str
    samples: list[int]
    mean_reasoning_tokens: float

    @property
    def votes(self) -> int:
        return len(self.samples)


@dataclass
class VoteOutcome:
    """A majority vote over a request's samples (engine/samples.py has the rules).

    groups: most votes first (ties: shortest mean reasoning, then lowest sample index), so
    groups[0] is the winner. answers: each sample's final answer (None: it did not vote).
    early_stopped: samples cancelled because they could no longer change the winner.
    """

    groups: list[VoteGroup]
    answers: list[str | None]
    early_stopped: list[int] = field(default_factory=list)

    @property
    def winner(self) -> VoteGroup | None:
        return self.groups[0] if self.groups else None

    def tally(self) -> dict[str, int]:
        return {g.answer: g.votes for g in self.groups}

    def to_dict(self) -> dict[str, Any]:
        winner = self.winner
        return {
            "winner": None if winner is None else winner.answer,
            "winner_samples": [] if winner is None else list(winner.samples),
            "groups": [{"answer": g.answer, "votes": g.votes, "samples": list(g.samples),
                        "mean_reasoning_tokens": round(g.mean_reasoning_tokens, 1)}
                       for g in self.groups],
            "answers": list(self.answers),
            "abstained": [i for i, a in enumerate(self.answers) if a is None],
            "early_stopped": list(self.early_stopped),
        }


@dataclass(frozen=True)
class Started:
    """The request left the queue and holds a slot; its prompt is being prefilled."""

    request_id: str
    slot: int
    prompt_tokens: int
    cached_tokens: int
    sample: int = 0


@dataclass(frozen=True)
class TextDelta:
    request_id: str
    channel: Channel
    text: str
    sample: int = 0


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the request.

    codes: "cjk_prompt" (the model answers better in English), "thinking_budget" and
    "loop_guard" (the engine closed the think block).
    """

    request_id: str
    code: str
    message: str
    sample: int = 0


@dataclass(frozen=True)
class SampleFinished:
    """One sample of an n > 1 request ended (the request goes on until its Finished)."""

    request_id: str
    result: GenerationResult
    sample: int = 0


@dataclass(frozen=True)
class Finished:
    request_id: str
    result: GenerationResult


Event = Started | TextDelta | Notice | SampleFinished | Finished


# -- the engine as its users see it ---------------------------------------------------------------

@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    architecture: str
    n_params: int
    size_bytes: int
    n_ctx_train: int
    chat_template: str | None
    n_slots: int
    ctx_per_slot: int
    thinks: bool  # the vocabulary has <think> and </think> as single tokens
    gpu_layers: int
    gpu_offload: bool  # this llama.cpp build can offload to a GPU


@dataclass(frozen=True)
class EngineStatus:
    n_slots: int
    busy_slots: int
    queued: int
    queue_size: int
    kv_used_tokens: int
    kv_capacity_tokens: int


class EventStream(Protocol):
    """One request's events, read from an asyncio loop, and a way to stop it. What the TUI's
    backends return (a local engine's RequestHandle, or a remote server's stream)."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    def cancel(self) -> None:
        """Stop the request as soon as possible (thread-safe, idempotent)."""


class RequestStream(EventStream, Protocol):
    """A submitted request on an engine in this process: events read blocking or async,
    cancel, and the final result."""

    request_id: str

    @property
    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> GenerationResult: ...

    def __iter__(self) -> Iterator[Event]: ...


class EngineAPI(Protocol):
    """The engine as the server, the TUI and the CLI use it (vibe_edge.engine.Engine, or a test
    double): submit a request and stream its events, report status, close.

    submit() raises at once for a request that cannot run (InvalidRequest,
    ContextLengthExceeded, EngineBusy, EngineClosed); everything after that arrives as events.
    """

    @property
    def info(self) -> ModelInfo: ...

    def submit(self, request: GenerationRequest) -> RequestStream: ...

    def status(self) -> EngineStatus: ...

    def close(self, grace_s: float = 0.0) -> None: ...
