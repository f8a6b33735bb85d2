"""One reply, from the first event to its saved end, without Textual.

ReplySession is the reply's state machine: it reads a backend's event stream, keeps the
counts the status line shows (state, tokens, time to first token, tokens/s), writes the
history as the reply streams (the reasoning is on disk before the answer starts, partial text
every save interval, the final row once), and tells a ReplyView what to draw. The app only
wires it to widgets (AssistantMessage is the ReplyView), so the rules are tested without a
terminal (tests/tui/test_session.py).

Ends: `finish` when the stream says Finished (or fails), `stop` for Esc, synchronous so the
reply is saved as stopped at once. Either runs once; `done` is set first thing, `shown` last,
even if drawing failed.

Samples (`n` > 1, the samples option): each sample streams into its own line and collapsible
block (the view's sample methods) and into the row's `samples` record (tui/samples.py); the
reply's own answer and reasoning are the vote's winner, drawn and saved when Finished comes,
with the tally. Esc saves every sample as it stands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vibe_edge.tui.samples import ERROR as SAMPLE_FAILED
from vibe_edge.tui.samples import STOPPED as SAMPLE_STOPPED
from vibe_edge.tui.samples import SampleProgress, pick_stopped, sample_line, tally_text
from vibe_edge.tui.samples import record as samples_record
from vibe_edge.tui.store import COMPLETE, ERROR, LENGTH, STOPPED, HistoryStore
from vibe_edge.types import (
    EventStream,
    Finished,
    FinishReason,
    Notice,
    SampleFinished,
    Started,
    TextDelta,
)

__all__ = ["ReplySession", "ReplyView"]

_STATUS = {FinishReason.STOP: COMPLETE, FinishReason.LENGTH: LENGTH, FinishReason.CANCELLED: STOPPED}


class ReplyView(Protocol):
    """Where a reply is drawn (the chat's AssistantMessage)."""

    async def add_reasoning(self, text: str) -> None: ...

    async def add_answer(self, text: str) -> None: ...

    async def add_notice(self, code: str, message: str) -> None: ...

    async def finish(self, status: str, *, boxed: str | None = None, stats: dict[str, Any] | None = None,
                     error: str | None = None, reasoning_tokens: int | None = None) -> None: ...

    def finish_now(self, status: str) -> None: ...

    def flush(self) -> None: ...

    # Only for a reply of several samples (n > 1):
    async def start_samples(self, n: int) -> None: ...

    def add_sample_text(self, sample: int, channel: str, text: str) -> None: ...

    def update_sample(self, sample: int, line: str) -> None: ...

    async def show_winner(self, *, reasoning: str, answer: str, boxed: str | None,
                          tally: str, reasoning_tokens: int | None = None) -> None: ...


@dataclass
class ReplySession:
    store: HistoryStore
    conversation_id: int
    message_id: int
    view: ReplyView
    # Called once the end is saved and drawn (stopped: Esc), before `shown` is set.
    on_end: Callable[[ReplySession, bool], None] = lambda _session, _stopped: None
    clock: Callable[[], float] = time.monotonic
    n: int = 1  # samples the request draws (the reply is their vote when > 1)

    reasoning: list[str] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    notices: list[dict[str, str]] = field(default_factory=list)
    state: str = "queued"
    prompt_tokens: int = 0
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    ttft_ms: float | None = None
    tps: float | None = None
    budget: int | None = None  # the thinking budget the request carries (None: none)
    status: str | None = None  # the history status it ended with
    error: str | None = None
    done: bool = False   # set first thing when the reply ends: no second end, input is free
    shown: bool = False  # the view shows the end too (footer, boxed answer): set last
    stream: EventStream | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.first_token: float | None = None
        self.last_save = self.started
        self._saved_reasoning = False
        self.use_samples(self.n)

    def use_samples(self, n: int) -> None:
        """The request draws `n` samples (known once it is built, before its stream starts)."""
        self.n = n
        self.samples = [SampleProgress(i) for i in range(n)] if n > 1 else []

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def answer_text(self) -> str:
        return "".join(self.answer)

    # -- the stream -------------------------------------------------------------------------------
    async def consume(self, stream: EventStream) -> None:
        """Read the stream to its end (a stream without Finished is an error)."""
        self.stream = stream
        self.state = "queued"
        if self.samples:
            await self.view.start_samples(self.n)
        async for event in stream:
            if self.done:
                break
            await self.handle(event)
        if not self.done:
            await self.finish(ERROR, error="the stream ended unexpectedly")

    async def handle(self, event: object) -> None:
        if self.samples and not isinstance(event, Finished):
            await self._sample_event(event)
        elif isinstance(event, TextDelta):
            if self.first_token is None:
                self.first_token = self.clock()
                self.ttft_ms = (self.first_token - self.started) * 1000
            if event.channel == "reasoning":
                self.state = "thinking"
                self.reasoning.append(event.text)
                self.reasoning_tokens += 1
                await self.view.add_reasoning(event.text)
            else:
                if not self.answer and self.reasoning and not self._saved_reasoning:
                    # The reasoning is complete: on disk before the answer streams.
                    self.store.update_message(self.message_id, reasoning=self.reasoning_text)
                    self._saved_reasoning = True
                self.state = "answering"
                self.answer.append(event.text)
                self.answer_tokens += 1
                await self.view.add_answer(event.text)
        elif isinstance(event, Started):
            self.state = "reading prompt"
            self.prompt_tokens = event.prompt_tokens
        elif isinstance(event, Notice):
            self.notices.append({"code": event.code, "message": event.message})
            self.store.update_message(self.message_id, notices=self.notices)
            await self.view.add_notice(event.code, event.message)
        elif isinstance(event, Finished):
            await self._finished(event)

    # -- several samples --------------------------------------------------------------------------
    def _sample(self, index: int) -> SampleProgress | None:
        return self.samples[index] if 0 <= index < len(self.samples) else None

    def _show_sample(self, sample: SampleProgress, vote: dict[str, Any] | None = None) -> None:
        line = sample_line(sample.entry(vote, text=False), vote)
        self.view.update_sample(sample.index, line)

    def _sample_counts(self) -> None:
        """The status line's figures: thinking and answer tokens of the furthest sample (each
        sample has its own budget and context), the state over all of them."""
        self.reasoning_tokens = max(s.reasoning_tokens for s in self.samples)
        self.answer_tokens = max(s.answer_tokens for s in self.samples)
        ended = sum(not s.running for s in self.samples)
        if self.first_token is not None:
            self.state = f"sampling · {ended}/{self.n} done"

    async def _sample_event(self, event: object) -> None:
        sample = self._sample(getattr(event, "sample", 0))
        if sample is None:
            return
        if isinstance(event, TextDelta):
            if self.first_token is None:
                self.first_token = self.clock()
                self.ttft_ms = (self.first_token - self.started) * 1000
            before = sample.state
            sample.text(event.channel, event.text)
            self.view.add_sample_text(sample.index, event.channel, event.text)
            if sample.state != before:
                self._show_sample(sample)
            self._sample_counts()
        elif isinstance(event, Started):
            sample.state = "reading prompt"
            if self.first_token is None:
                self.state = "reading prompt"
            self.prompt_tokens = self.prompt_tokens or event.prompt_tokens
            self._show_sample(sample)
        elif isinstance(event, Notice):
            sample.notices.append(event.code)
            # One line per kind of notice for the reply: n samples hitting the same thinking
            # budget say one thing, not n times the same.
            if all(n["code"] != event.code for n in self.notices):
                self.notices.append({"code": event.code, "message": event.message})
                self.store.update_message(self.message_id, notices=self.notices)
                await self.view.add_notice(event.code, event.message)
        elif isinstance(event, SampleFinished):
            sample.finished(event.result)
            self._show_sample(sample)
            self._sample_counts()

    async def _samples_finished(self, event: Finished) -> None:
        result = event.result
        for r in result.samples or ():
            sample = self._sample(r.sample)
            if sample is not None and sample.result is None:
                sample.finished(r)  # its SampleFinished never came (a remote stream cut short)
        for sample in self.samples:
            if sample.running:  # the request ended without this sample: it did not finish
                sample.state = SAMPLE_STOPPED if result.finish_reason is FinishReason.CANCELLED \
                    else SAMPLE_FAILED
        vote = result.vote.to_dict() if result.vote is not None else None
        for sample in self.samples:
            self._show_sample(sample, vote)
        self._sample_counts()
        kept = samples_record(self.samples, vote)
        stats = result.stats.to_dict()
        if stats.get("ttft_ms") is None and self.ttft_ms is not None:
            stats["ttft_ms"] = round(self.ttft_ms, 1)
        self.ttft_ms = stats.get("ttft_ms")
        self.tps = result.stats.decode_tps or self.tps
        reason = result.finish_reason
        # The result's own fields are the winner's (sample 0's without a vote).
        await self.view.show_winner(reasoning=result.reasoning, answer=result.answer,
                                    boxed=result.boxed, tally=tally_text(vote, self.n),
                                    reasoning_tokens=result.stats.reasoning_tokens or None)
        await self.finish(_STATUS.get(reason, ERROR), reasoning=result.reasoning,
                          answer=result.answer, boxed=result.boxed, stats=stats,
                          error=result.error, finish_reason=reason.value, samples=kept)

    async def _finished(self, event: Finished) -> None:
        if self.samples:
            await self._samples_finished(event)
            return
        result = event.result
        reason = result.finish_reason
        if reason is FinishReason.TIMEOUT:
            result.error = result.error or "the request ran past its time limit"
        stats = result.stats.to_dict()
        if stats.get("ttft_ms") is None and self.ttft_ms is not None:
            stats["ttft_ms"] = round(self.ttft_ms, 1)
        self.reasoning_tokens = result.stats.reasoning_tokens or self.reasoning_tokens
        self.answer_tokens = result.stats.answer_tokens or self.answer_tokens
        if result.stats.prompt_tokens:
            self.prompt_tokens = result.stats.prompt_tokens
        self.tps = result.stats.decode_tps or self.tps
        self.ttft_ms = stats.get("ttft_ms")
        # The engine's own split is authoritative (it also covers text the stream never showed).
        reasoning = result.reasoning if result.reasoning or not self.reasoning else self.reasoning_text
        answer = result.answer if result.answer or not self.answer else self.answer_text
        await self.finish(_STATUS.get(reason, ERROR), reasoning=reasoning, answer=answer,
                          boxed=result.boxed, stats=stats, error=result.error,
                          finish_reason=reason.value)

    # -- the ends ---------------------------------------------------------------------------------
    async def finish(self, status: str, *, reasoning: str | None = None, answer: str | None = None,
                     boxed: str | None = None, stats: dict[str, Any] | None = None,
                     error: str | None = None, finish_reason: str | None = None,
                     samples: dict[str, Any] | None = None) -> None:
        """Save the reply's final row and draw its end."""
        if self.done:
            return
        self.done = True
        self.status, self.error = status, error
        self.store.update_message(
            self.message_id, content=answer if answer is not None else self.answer_text,
            reasoning=reasoning if reasoning is not None else self.reasoning_text, status=status,
            finish_reason=finish_reason, boxed=boxed, stats=stats or {}, notices=self.notices,
            error=error, samples=samples if samples is not None else self._record())
        self.store.touch(self.conversation_id)
        try:
            await self.view.finish(status, boxed=boxed, stats=stats, error=error,
                                   reasoning_tokens=self.reasoning_tokens)
            self.on_end(self, False)
        finally:
            self.shown = True  # even if drawing failed: the reply is over and saved

    def stop(self) -> None:
        """Esc: save what was written as stopped and mark it, without waiting for anything."""
        if self.done:
            return
        self.done = True
        self.status = STOPPED
        if self.stream is not None:
            self.stream.cancel()
        stats = {"ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 1),
                 "reasoning_tokens": self.reasoning_tokens, "answer_tokens": self.answer_tokens,
                 "prompt_tokens": self.prompt_tokens,
                 "decode_tps": None if self.tps is None else round(self.tps, 2)}
        content, reasoning = self.answer_text, self.reasoning_text
        if self.samples:
            for sample in self.samples:
                if sample.running:
                    sample.state = SAMPLE_STOPPED
            # No vote without the samples' ends: keep one sample's text as the reply (what a
            # follow-up turn sends) and every sample's in the record.
            kept = pick_stopped(self.samples)
            kept_entry = kept.entry()
            content, reasoning = kept_entry["answer"], kept_entry["reasoning"]
        self.store.update_message(self.message_id, content=content, reasoning=reasoning,
                                  status=STOPPED, finish_reason=FinishReason.CANCELLED.value,
                                  stats=stats, notices=self.notices, samples=self._record())
        self.store.touch(self.conversation_id)
        try:
            for sample in self.samples:
                self._show_sample(sample)
            self.view.flush()
            self.view.finish_now(STOPPED)
            self.on_end(self, True)
        finally:
            self.shown = True

    # -- while it streams -------------------------------------------------------------------------
    def tick(self, save_interval: float) -> None:
        """The UI's periodic update: draw what is held back, estimate tokens/s, save partial
        text every `save_interval` seconds (a crash loses at most that much)."""
        if self.done:
            return
        self.view.flush()
        now = self.clock()
        if self.first_token is not None and (self.samples or self.state in ("thinking", "answering")):
            elapsed = now - self.first_token
            # With samples: every sample's tokens (the engine decodes them side by side).
            n = self.generated_tokens
            if elapsed > 0.5 and n > 1:
                self.tps = (n - 1) / elapsed
        for sample in self.samples:
            if sample.running and sample.state in ("thinking", "answering"):
                self._show_sample(sample)  # its token count
        if now - self.last_save >= save_interval:
            self.last_save = now
            self.store.update_message(self.message_id, content=self.answer_text,
                                      reasoning=self.reasoning_text, samples=self._record())

    @property
    def generated_tokens(self) -> int:
        if self.samples:
            return sum(s.reasoning_tokens + s.answer_tokens for s in self.samples)
        return self.reasoning_tokens + self.answer_tokens

    def _record(self) -> dict[str, Any] | None:
        # None while no sample has started (a request that failed to start): nothing to keep.
        started = any(s.state != "queued" for s in self.samples)
        return samples_record(self.samples) if started else None
