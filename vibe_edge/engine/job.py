"""A request while the engine works on it: its sampler, text state and counters.

Everything a Job holds is touched only by the scheduler thread once the job is submitted.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from vibe_edge.engine.backend import DecodeBackend, TokenSampler
from vibe_edge.engine.detokenize import Detokenizer, StopMatcher
from vibe_edge.engine.handle import RequestHandle
from vibe_edge.engine.samples import SampleGroup, SampleHandle
from vibe_edge.engine.speculate import SlotSpeculation
from vibe_edge.text.boxed import extract_boxed
from vibe_edge.text.loop_guard import LoopGuard
from vibe_edge.text.reasoning import ReasoningParser
from vibe_edge.types import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Notice,
    ReasoningEnd,
    RequestStats,
    TextDelta,
    thinking_budget_ceiling,
)


def effective_thinking_budget(asked: int | None, max_new_tokens: int) -> int:
    """The budget the engine enforces, its hard invariant: the one asked for, but never so large
    that the answer has no room left in what this request may still generate."""
    ceiling = thinking_budget_ceiling(max_new_tokens)
    return ceiling if asked is None else min(asked, ceiling)


@dataclass
class Job:
    request: GenerationRequest
    handle: RequestHandle | SampleHandle
    prompt_tokens: list[int]
    sampler: TokenSampler
    max_new_tokens: int
    deadline: float  # time.monotonic() value
    start_in_reasoning: bool = False
    # Structured output on a thinking model: `sampler` draws the reasoning freely and this one,
    # holding the grammar, draws the answer (a grammar from the first token would forbid the
    # think block, and a reasoning model that may not think answers far worse).
    answer_sampler: TokenSampler | None = None
    think_open: int | None = None  # the `<think>` token id, when it is a single token
    notices: list[tuple[str, str]] = field(default_factory=list)  # sent when the job starts
    # Speculative decoding's state, when this job speculates (never with a grammar: a draft
    # would have to be checked against it token by token, and structured answers are short).
    spec: SlotSpeculation | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    # One of n samples (engine/samples.py): the group, and this sample's index (0 leads: it is
    # queued, prefills the prompt, and the others start from a copy of its KV).
    group: SampleGroup | None = None
    sample_index: int = 0

    # Filled in by the scheduler.
    admitted_at: float | None = None
    slot_seq: int = -1
    prefill_done_at: float | None = None
    first_token_at: float | None = None
    cached_tokens: int = 0
    n_generated: int = 0  # sampled + forced tokens
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    reasoning_end: ReasoningEnd | None = None
    stop_hit: bool = False  # a stop string ended the answer: nothing after it is shown
    drawing: Future | None = None  # a slow grammar draw in flight (see Scheduler._start_draw)

    def __post_init__(self) -> None:
        self._slow: TokenSampler | None = None
        self.thinking_budget = effective_thinking_budget(self.request.reasoning.thinking_budget,
                                                         self.max_new_tokens)
        self.parser = ReasoningParser(start_in_reasoning=self.start_in_reasoning)
        self.detok = Detokenizer()
        self.stops = StopMatcher(self.request.stop)
        self.loop_guard = LoopGuard() if self.request.reasoning.loop_guard else None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._answer: list[str] = []

    @property
    def id(self) -> str:
        return self.request.request_id

    @property
    def slots_needed(self) -> int:
        return 1 if self.group is None else self.group.n

    @property
    def followers(self) -> list[Job]:
        """The other samples of a group this job leads (they wait for its prefill)."""
        if self.group is None or self.sample_index != 0:
            return []
        return self.group.jobs[1:]

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, backend: DecodeBackend, index: int) -> int | None:
        """Draw the next token from the logits at batch index `index`; None when a grammar
        refused the drawn token and draw_slow() must finish the draw (off the scheduler
        thread: filtering a whole vocabulary through a grammar is slow)."""
        grammar = self.answer_sampler
        if grammar is None:
            chosen = self.sampler
        elif self.n_generated == 0 and not self.start_in_reasoning:
            # Will the model open a think block? Ask the free sampler (it has no grammar, so it
            # always draws at once); if it does not, the answer starts right here and this first
            # token must obey the grammar too.
            token = backend.sample(self.sampler, index)
            if token == self.think_open:
                return token
            chosen = grammar
        else:
            chosen = self.sampler if self.parser.in_reasoning else grammar
        token = backend.sample(chosen, index)
        if token is None:
            self._slow = chosen
        return token

    def draw_slow(self) -> int:
        sampler, self._slow = self._slow, None
        assert sampler is not None
        return sampler.sample_slow()

    def close_samplers(self) -> None:
        drawing = self.drawing
        if drawing is not None and not drawing.done():
            # A slow draw still uses the samplers on another thread: free them after it.
            drawing.add_done_callback(lambda _f: self._free_samplers())
            return
        self._free_samplers()

    def _free_samplers(self) -> None:
        self.sampler.close()
        if self.answer_sampler is not None:
            self.answer_sampler.close()

    def emit(self, event: Event) -> None:
        self.handle.emit(event)

    def notice(self, code: str, message: str) -> None:
        self.emit(Notice(self.id, code, message))

    # -- text path ------------------------------------------------------------------------------
    def take_text(self, text: str) -> bool:
        """Route decoded text into the reasoning/answer channels. True when a stop string hit.

        Stop strings apply to the answer only: a reasoning trace quotes all sorts of text, and
        clients set stops for the answer they will read.
        """
        if not text:
            return False
        for channel, piece in self.parser.feed(text):
            if self._route(channel, piece):
                return True
        return False

    def _route(self, channel: str, piece: str) -> bool:
        if channel == "reasoning":
            self._reasoning.append(piece)
            self._text.append(piece)
            self.emit(TextDelta(self.id, "reasoning", piece))
            return False
        safe, stopped = self.stops.feed(piece)
        self.stop_hit = self.stop_hit or stopped
        if safe:
            self._answer.append(safe)
            self._text.append(safe)
            self.emit(TextDelta(self.id, "answer", safe))
        return stopped

    def count_token(self, was_reasoning: bool) -> None:
        self.n_generated += 1
        if was_reasoning or self.parser.in_reasoning:
            self.reasoning_tokens += 1
        else:
            self.answer_tokens += 1

    def flush_text(self) -> None:
        """End of generation: release held-back text (unless a stop string ended it)."""
        if self.stop_hit:
            return
        tail = self.detok.flush()
        pieces = self.parser.feed(tail) if tail else []
        pieces += self.parser.flush()
        for channel, piece in pieces:
            if self._route(channel, piece):
                return
        held = self.stops.flush()
        if held:
            self._answer.append(held)
            self._text.append(held)
            self.emit(TextDelta(self.id, "answer", held))

    # -- the end --------------------------------------------------------------------------------
    def finish(self, reason: FinishReason, error: str | None = None) -> GenerationResult:
        now = time.monotonic()
        stats = RequestStats(
            queue_ms=1000 * ((self.admitted_at or now) - self.submitted_at),
            ttft_ms=None if self.first_token_at is None else 1000 * (self.first_token_at - self.submitted_at),
            total_ms=1000 * (now - self.submitted_at),
            prompt_tokens=len(self.prompt_tokens),
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
            answer_tokens=self.answer_tokens,
            draft_tokens=self.spec.drafted if self.spec else 0,
            accepted_tokens=self.spec.accepted if self.spec else 0,
        )
        if self.admitted_at is not None and self.prefill_done_at is not None:
            evaluated = len(self.prompt_tokens) - self.cached_tokens
            elapsed = self.prefill_done_at - self.admitted_at
            # A sample that started from another's KV evaluated nothing: no rate to report.
            stats.prefill_tps = evaluated / elapsed if elapsed > 0 and evaluated > 0 else None
        if self.first_token_at is not None and self.n_generated > 1:
            elapsed = now - self.first_token_at
            stats.decode_tps = (self.n_generated - 1) / elapsed if elapsed > 0 else None
        answer = "".join(self._answer)
        result = GenerationResult(
            request_id=self.id,
            text="".join(self._text),
            reasoning="".join(self._reasoning),
            answer=answer,
            finish_reason=reason,
            stats=stats,
            reasoning_end=self.reasoning_end,
            boxed=extract_boxed(answer),
            error=error,
        )
        self.close_samplers()
        self.emit(Finished(self.id, result))
        return result
