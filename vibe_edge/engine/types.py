"""The engine's public vocabulary: what a caller submits and what it gets back.

Pure data, no llama.cpp: the server, the TUI and the chat helpers import these freely. The
event stream of one request is:

    Started -> (TextDelta | Notice)* -> Finished

`Finished` always comes last, exactly once, whatever happened (stop, length, cancel, timeout,
an engine error), so a consumer can loop until it sees it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from vibe_edge.errors import InvalidRequest

Channel = Literal["reasoning", "answer"]

_request_ids = itertools.count(1)


def _next_request_id() -> str:
    return f"req-{next(_request_ids)}"


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

    def validate(self) -> None:
        """Raise InvalidRequest naming the first value out of range."""
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
    loop_guard: bool = True

    def validate(self) -> None:
        if self.thinking_budget is not None and (
            not isinstance(self.thinking_budget, int) or self.thinking_budget < 0
        ):
            raise InvalidRequest(
                f"thinking_budget must be a number of tokens >= 0 (0: no thinking), got {self.thinking_budget!r}",
                param="thinking_budget",
            )


@dataclass
class GenerationRequest:
    """One generation. Give exactly one of `prompt` (raw text) or `messages` (chat).

    messages are OpenAI-style dicts ({"role", "content"}) rendered with the model's own chat
    template. max_tokens None means "until the slot's context is full". deadline_s counts from
    submission; None takes the engine's default.
    """

    prompt: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int | None = None
    stop: Sequence[str] = ()
    reasoning: ReasoningOptions = field(default_factory=ReasoningOptions)
    deadline_s: float | None = None
    request_id: str = field(default_factory=_next_request_id)

    def validate(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise InvalidRequest("give exactly one of prompt or messages", param="messages")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise InvalidRequest(f"max_tokens must be a positive integer, got {self.max_tokens!r}",
                                 param="max_tokens")
        if isinstance(self.stop, str):
            raise InvalidRequest("stop must be a list of strings", param="stop")
        if len(self.stop) > 16 or any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidRequest("stop takes at most 16 non-empty strings", param="stop")
        if self.deadline_s is not None and not (self.deadline_s > 0):
            raise InvalidRequest(f"deadline_s must be > 0 seconds, got {self.deadline_s!r}",
                                 param="deadline_s")
        self.sampling.validate()
        self.reasoning.validate()


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

    @property
    def completion_tokens(self) -> int:
        return self.reasoning_tokens + self.answer_tokens

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


@dataclass(frozen=True)
class Started:
    """The request left the queue and holds a slot; its prompt is being prefilled."""

    request_id: str
    slot: int
    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class TextDelta:
    request_id: str
    channel: Channel
    text: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the request.

    codes: "cjk_prompt" (the model answers better in English), "thinking_budget" and
    "loop_guard" (the engine closed the think block).
    """

    request_id: str
    code: str
    message: str


@dataclass(frozen=True)
class Finished:
    request_id: str
    result: GenerationResult


Event = Started | TextDelta | Notice | Finished
