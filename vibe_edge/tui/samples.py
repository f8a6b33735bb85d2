"""A reply drawn as several samples (the chat's `samples` option): each sample's progress, the
record the history keeps of them, and the lines the chat shows (one per sample, and the tally).

Textual-free, like the session: the same record is written while the reply streams, when it
ends, and read back when a conversation is reopened, so a live reply and a reopened one are
drawn by the same functions.

The record (the history's `samples` column, JSON):

    {"vote": VoteOutcome.to_dict() or None,
     "samples": [{"index", "state", "answer", "reasoning", "finish_reason", "boxed",
                  "vote_answer", "early_stopped", "reasoning_tokens", "answer_tokens",
                  "decode_tps", "notices"}, ...]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vibe_edge.types import FinishReason, GenerationResult

__all__ = ["SampleProgress", "pick_stopped", "record", "sample_line", "tally_text"]

# A sample's state as the chat shows it. Running: queued, reading prompt, thinking, answering.
DONE, LENGTH, STOPPED, EARLY, ERROR = "done", "cut off", "stopped", "stopped early", "failed"
_ENDED = {FinishReason.STOP: DONE, FinishReason.LENGTH: LENGTH, FinishReason.CANCELLED: STOPPED,
          FinishReason.TIMEOUT: ERROR, FinishReason.ERROR: ERROR}
_SHORT_ANSWER = 40  # characters of a plain-text answer shown on a sample's line


@dataclass
class SampleProgress:
    """One sample of a reply, as its events arrive."""

    index: int
    state: str = "queued"
    reasoning: list[str] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    notices: list[str] = field(default_factory=list)
    result: GenerationResult | None = None

    @property
    def running(self) -> bool:
        return self.result is None and self.state not in (STOPPED, EARLY, ERROR)

    def text(self, channel: str, text: str) -> None:
        if channel == "reasoning":
            self.state = "thinking"
            self.reasoning.append(text)
            self.reasoning_tokens += 1
        else:
            self.state = "answering"
            self.answer.append(text)
            self.answer_tokens += 1

    def finished(self, result: GenerationResult) -> None:
        self.result = result
        self.state = _ENDED.get(result.finish_reason, ERROR)
        # The engine's counts and split are authoritative (they cover text no delta showed).
        self.reasoning_tokens = result.stats.reasoning_tokens or self.reasoning_tokens
        self.answer_tokens = result.stats.answer_tokens or self.answer_tokens

    def entry(self, vote: dict[str, Any] | None = None, *, text: bool = True) -> dict[str, Any]:
        """This sample as the record keeps it. text=False: without the streamed text (its line
        is redrawn several times a second, and a long trace is not joined for that)."""
        r = self.result
        if not text:
            reasoning, answer = "", (r.answer if r is not None else "")
        else:
            reasoning = r.reasoning if r is not None and (r.reasoning or not self.reasoning) \
                else "".join(self.reasoning)
            answer = r.answer if r is not None and (r.answer or not self.answer) else "".join(self.answer)
        state = self.state
        early = bool(vote) and self.index in vote.get("early_stopped", ())
        if early:
            state = EARLY
        answers = (vote or {}).get("answers") or []
        return {
            "index": self.index, "state": state, "answer": answer, "reasoning": reasoning,
            "finish_reason": r.finish_reason.value if r is not None else None,
            "boxed": r.boxed if r is not None else None,
            "vote_answer": answers[self.index] if self.index < len(answers) else None,
            "early_stopped": early, "reasoning_tokens": self.reasoning_tokens,
            "answer_tokens": self.answer_tokens,
            "decode_tps": None if r is None or r.stats.decode_tps is None else round(r.stats.decode_tps, 2),
            "notices": list(self.notices),
        }


def record(samples: list[SampleProgress], vote: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"vote": vote, "samples": [s.entry(vote) for s in samples]}


def _answer_of(entry: dict[str, Any]) -> str | None:
    """What a sample answered, for its line: the vote's reading of it, else its boxed answer,
    else the start of its answer text once it is over."""
    shown = entry.get("vote_answer") or entry.get("boxed")
    if not shown and entry.get("state") in (DONE, LENGTH):
        shown = " ".join((entry.get("answer") or "").split())
    if not shown:
        return None
    return shown if len(shown) <= _SHORT_ANSWER else shown[:_SHORT_ANSWER - 1] + "…"


def sample_line(entry: dict[str, Any], vote: dict[str, Any] | None = None) -> str:
    """`#2 · answering · 130 tokens`, `#1 · done · 412 tokens · 42 ✓` (✓: it voted with the
    winner)."""
    tokens = int(entry.get("reasoning_tokens") or 0) + int(entry.get("answer_tokens") or 0)
    parts = [f"#{entry['index'] + 1}", str(entry.get("state") or "?")]
    if tokens:
        parts.append(f"{tokens:,} token{'s' if tokens != 1 else ''}")
    shown = _answer_of(entry)
    if shown:
        won = bool(vote) and entry["index"] in (vote.get("winner_samples") or ())
        parts.append(shown + (" ✓" if won else ""))
    return " · ".join(parts)


def tally_text(vote: dict[str, Any] | None, n: int) -> str:
    """`Vote: 42 ×3 · 41 ×1 · 0 abstained · 1 stopped early`."""
    if not vote:
        return f"{n} samples (no vote)"
    groups = vote.get("groups") or []
    shown = [f"{g.get('answer', '?')} ×{g.get('votes', 0)}" for g in groups]
    if not shown:
        shown = ["no sample gave an answer"]
    abstained = len(vote.get("abstained") or ())
    early = len(vote.get("early_stopped") or ())
    # A sample stopped early abstains too: count it once, under "stopped early".
    abstained -= len(set(vote.get("abstained") or ()) & set(vote.get("early_stopped") or ()))
    return "Vote: " + " · ".join([*shown, f"{abstained} abstained", f"{early} stopped early"])


def pick_stopped(samples: list[SampleProgress]) -> SampleProgress:
    """The sample a reply stopped before its vote keeps as its text (the follow-up turn sends
    it): the first that ended by itself with an answer, else the one that wrote the most."""
    for s in samples:
        r = s.result
        if r is not None and r.finish_reason is FinishReason.STOP and (r.answer or s.answer):
            return s
    return max(samples, key=lambda s: (len("".join(s.answer)), len("".join(s.reasoning)), -s.index))
