"""`n` samples of one request, and the majority vote over their answers (self-consistency).

One request may ask for n samples of one prompt. The scheduler admits them together (a
`SampleGroup`: one Job per sample, sample 0 the leader): the leader prefills the prompt, then
its KV is copied into every other sample's slot and each of them draws its first token from
the leader's own last-prompt logits with its own sampler, so the prompt is evaluated once and
every sample starts from the same distribution a fresh prefill would give.

Admission: a group waits in the queue until n slots are free at once, and the queue stays in
order (nothing behind a waiting group overtakes it), so a stream of single requests cannot
starve a group; the price is that free slots idle while the group waits for the rest. n is
at most the slot count (the engine refuses more), so a group always fits eventually.

Events: each sample's events are tagged with its index (`sample`), each sample ends with a
`SampleFinished`, and the request's one `Finished` comes after the last sample, carrying all
results (`GenerationResult.samples`) and, with `vote`, the `VoteOutcome`.

The vote (`Tally`):
- A sample's answer is the last `\\boxed{}` of its answer text; a sample with none answers with
  its whole answer text, whitespace collapsed (non-math tasks). Only samples that ended by
  themselves (stop, or length with a boxed answer) vote; cancelled, timed-out, failed ones and
  those with an empty answer abstain.
- Boxed answers are grouped by math equivalence (math-verify, as in the eval: `\\frac12` and
  `0.5` agree); plain-text answers by equal text.
- The winner has the most votes. Ties: the group with the shortest mean reasoning (a model that
  reaches an answer with less thought is more often right, and it costs less to read), then the
  group holding the lowest sample index.
- Early stop: once the leading group has more votes than the runner-up could reach if every
  sample still running joined it (lead > second + running), no running sample can change the
  winner, not even into a tie: they are all cancelled and their slots freed.

Equivalence may take SymPy a while, so votes are counted on a helper thread, never on the
scheduler's (the other users' tokens keep coming meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from vibe_edge.engine.handle import RequestHandle
from vibe_edge.text.equivalence import answers_equivalent, vote
from vibe_edge.types import (
    Event,
    Finished,
    FinishReason,
    GenerationResult,
    SampleFinished,
    VoteGroup,
    VoteOutcome,
)

__all__ = ["SampleGroup", "SampleHandle", "Tally", "replay_early_stop", "sample_answer", "voting_answer"]

_vote_pool: ThreadPoolExecutor | None = None
_vote_pool_lock = threading.Lock()


def vote_pool() -> ThreadPoolExecutor:
    """The one thread that counts votes (lazily started: most engines never vote)."""
    global _vote_pool
    with _vote_pool_lock:
        if _vote_pool is None:
            _vote_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vibe-edge-vote")
        return _vote_pool


def sample_answer(result: GenerationResult) -> tuple[str | None, bool]:
    """(the answer a sample votes with or None, whether it is a boxed math answer)."""
    return voting_answer(result.finish_reason, result.boxed, result.answer)


def voting_answer(finish_reason: FinishReason | str, boxed: str | None,
                  answer: str) -> tuple[str | None, bool]:
    """sample_answer from a result's parts (the eval replays votes from its saved samples)."""
    reason = FinishReason(finish_reason)
    if reason not in (FinishReason.STOP, FinishReason.LENGTH):
        return None, False
    if boxed:
        return boxed, True
    if reason is not FinishReason.STOP:
        return None, False  # cut off mid-answer: its text is not an answer
    text = " ".join(answer.split())
    return (text or None), False


class Tally:
    """The vote over n samples as they finish, in any order (pure: no engine, no threads)."""

    def __init__(self, n: int, *, equivalent: Callable[[str, str], bool] | None = None):
        self.n = n
        self.answers: list[str | None] = [None] * n
        self.reasoning: list[int] = [0] * n
        self.finished: list[bool] = [False] * n
        self._math: dict[str, bool] = {}
        self._equivalent = equivalent or answers_equivalent

    def add(self, index: int, answer: str | None, *, is_math: bool = True,
            reasoning_tokens: int = 0) -> None:
        self.finished[index] = True
        self.reasoning[index] = reasoning_tokens
        if answer is not None and answer.strip():
            self.answers[index] = answer
            self._math[answer] = self._math.get(answer, True) and is_math

    def add_result(self, index: int, result: GenerationResult) -> None:
        answer, is_math = sample_answer(result)
        self.add(index, answer, is_math=is_math, reasoning_tokens=result.stats.reasoning_tokens)

    @property
    def running(self) -> list[int]:
        return [i for i, done in enumerate(self.finished) if not done]

    def _same(self, a: str, b: str) -> bool:
        if self._math.get(a) and self._math.get(b):
            return self._equivalent(a, b)
        return a == b

    def outcome(self, early_stopped: list[int] | None = None) -> VoteOutcome:
        def mean_reasoning(members: list[int]) -> float:
            return sum(self.reasoning[i] for i in members) / len(members)

        result = vote(self.answers, equivalent=self._same,
                      tie_key=lambda g: mean_reasoning(g.members))
        groups = [VoteGroup(g.answer, list(g.members), mean_reasoning(g.members)) for g in result.groups]
        return VoteOutcome(groups, list(self.answers), sorted(early_stopped or []))

    def decided(self) -> bool:
        """True when the samples still running can no longer change the winner."""
        groups = self.outcome().groups
        if not groups:
            return False
        second = groups[1].votes if len(groups) > 1 else 0
        return groups[0].votes > second + len(self.running)


def replay_early_stop(samples: list[tuple[int, str | None, bool, int]], *,
                      equivalent: Callable[[str, str], bool] | None = None) -> tuple[int, list[int]]:
    """Where the early stop would have ended a group of samples that all ran to their end:
    (tokens each sample still running had generated at the stop, the samples it cancels), or
    (-1, []) when the vote is never decided early.

    samples: (completion tokens, voting answer, is_math, reasoning tokens) per sample, by index.
    Exact for samples that decoded in lockstep (one request of n samples, n <= slots, no
    speculation: every sample has one new token per step from the same start), because then
    they finish in the order of their lengths. In the engine the vote is counted on a helper
    thread, so the real stop comes a few steps later than this one.
    """
    tally = Tally(len(samples), equivalent=equivalent)
    order = sorted(range(len(samples)), key=lambda i: (samples[i][0], i))
    for position, i in enumerate(order):
        tokens, answer, is_math, reasoning = samples[i]
        tally.add(i, answer, is_math=is_math, reasoning_tokens=reasoning)
        # Samples as long as this one finish in the same step: they are not cut.
        later = [j for j in order[position + 1:] if samples[j][0] > tokens]
        if len(later) < len(order) - position - 1:
            continue
        if later and tally.decided():
            return tokens, sorted(later)
    return -1, []


class SampleHandle:
    """What one sample's Job holds as its handle: its events go to the group (tagged with the
    sample index); it is cancelled with the request, or alone (early stop)."""

    def __init__(self, group: SampleGroup, index: int):
        self.group = group
        self.index = index
        self.request_id = group.handle.request_id
        self._cancelled = False

    @property
    def cancel_requested(self) -> bool:
        return self._cancelled or self.group.handle.cancel_requested

    def cancel(self) -> None:
        self._cancelled = True
        self.group.wake()

    def emit(self, event: Event) -> None:
        self.group.emit(self.index, event)


class SampleGroup:
    """n samples of one request: the handles their Jobs emit through, and the request's end.

    The scheduler thread emits every sample's events; votes are counted on `pool` (None: at
    once, on the emitting thread, as the policy tests do).
    """

    def __init__(self, handle: RequestHandle, n: int, *, vote: bool = False,
                 wake: Callable[[], None] | None = None, pool: ThreadPoolExecutor | None = None):
        self.handle = handle
        self.n = n
        self.voting = vote
        self.wake = wake or (lambda: None)
        self.pool = pool
        self.handles = [SampleHandle(self, i) for i in range(n)]
        self.jobs: list = []  # the Jobs, by sample index (set by whoever builds them)
        self.results: list[GenerationResult | None] = [None] * n
        self.tally = Tally(n)
        self.early_stopped: list[int] = []
        self._lock = threading.Lock()
        self._counted = 0

    def emit(self, index: int, event: Event) -> None:
        if not isinstance(event, Finished):
            self.handle.emit(replace(event, sample=index))
            return
        result = replace(event.result, sample=index)
        self.results[index] = result
        self.handle.emit(SampleFinished(result.request_id, result, sample=index))
        if self.pool is None:
            self._count(index, result)
        else:
            self.pool.submit(self._count, index, result)

    def _count(self, index: int, result: GenerationResult) -> None:
        with self._lock:
            if self.voting:
                self.tally.add_result(index, result)
                # Samples not counted yet still count as running for the decision (they may hold
                # an answer), but one the scheduler has finished already is not cancelled.
                running = self.tally.running
                if running and self.tally.decided():
                    for i in running:
                        if self.results[i] is None and not self.handles[i].cancel_requested:
                            self.early_stopped.append(i)
                            self.handles[i].cancel()
            self._counted += 1
            if self._counted == self.n:
                self.handle.emit(Finished(self.handle.request_id, self._final()))

    def _final(self) -> GenerationResult:
        results = [r for r in self.results]
        assert all(r is not None for r in results)
        # A sample that ended by itself while its cancel was on the way was not stopped early.
        stopped = [i for i in self.early_stopped if results[i].finish_reason is FinishReason.CANCELLED]
        outcome = self.tally.outcome(stopped) if self.voting else None
        chosen = results[0]
        if outcome is not None and outcome.winner is not None:
            chosen = results[outcome.winner.samples[0]]
        return replace(chosen, samples=results, vote=outcome)
