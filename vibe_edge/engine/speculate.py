"""Speculative decoding by n-gram lookup in a slot's own context (prompt lookup decoding).

Math and code repeat themselves: an answer restates the given code, a proof the problem's
expressions, a reasoning trace its own earlier lines. So the tokens that followed the latest
earlier occurrence of the context's last few tokens are a good guess for what comes next. The
scheduler feeds that guess (the draft) with the step's batch, samples at every drafted position
in order, and keeps the drafted tokens for as long as the sampler draws exactly them (see
Scheduler._verify). No second model, and the output is the one plain decoding would give: each
token is still drawn by the request's own sampler chain, in order, from the logits of the
context it would have had.

How long a draft to feed is a trade the machine decides: a step of more tokens costs more, by
an amount that differs between CPUs and GPUs by an order of magnitude (engine/step_cost.py
measures it as the engine runs). Each slot's DraftControl estimates the chance `q` that its
next drafted token is accepted (from how its drafts fared: accepted tokens are successes, a
rejection a failure); `best_draft` then picks the length that maximizes the step's expected
tokens per second, 1 + q + q^2 + ... for the slot's own tokens, against the measured cost of a
step that size, with the other slots' work already in the batch. So a slot copying code drafts
long, a slot writing prose stops drafting, and with many slots generating (a full step) nobody
drafts, without a threshold tuned for one machine.

A slot that does not draft learns nothing new about its text. So when drafting would not pay
even alone in a step, the slot rests, then probes with one token; each probe that fails
doubles the next rest (text that had nothing to copy for the last 50 tokens rarely starts in
the next 10), and one that succeeds ends the resting. Text with nothing to copy then costs a
few failed one-token probes per thousand tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from vibe_edge.engine.step_cost import StepCosts
from vibe_edge.types import SpecConfig

__all__ = ["DraftControl", "NgramIndex", "SlotSpeculation", "best_draft", "expected_gain"]

# The acceptance estimate: decayed counts of accepted drafted tokens and of rejections, so
# q = accepted / (accepted + rejections). It starts at 0.95, as if the text copied (on a CPU
# only a text that copies well pays for a draft at all, so a lower start would never try), with
# the weight of ten tokens: one failed draft brings it under what pays.
PRIOR_ACCEPTED = 9.5
PRIOR_REJECTED = 0.5
ACCEPTANCE_DECAY = 0.8        # per draft
PROBE_ACCEPTANCE = 0.95       # a probe is priced as if the text copied again
MIN_GAIN = 0.03               # a draft must promise 3% more tokens per second than none
FIRST_DRAFT = 2               # a slot's first drafts are short: a failed long one costs a lot;
                              # each draft accepted whole doubles the length allowed next, a
                              # rejection brings it back to one more than was accepted
REST_STEPS = 24               # steps without drafting, then a one-token probe...
MAX_REST_STEPS = 384          # ...each failed probe doubling the next rest, up to this


def expected_gain(q: float, drafted: int) -> float:
    """Tokens a draft of `drafted` tokens adds on average: q + q^2 + ... + q^drafted (the k-th
    drafted token counts only if the k - 1 before it were accepted)."""
    return sum(q ** k for k in range(1, drafted + 1))


def best_draft(q: float, available: int, batch_tokens: int, sampled: float, costs: StepCosts) -> int:
    """How many of `available` drafted tokens to feed: the length that maximizes the step's
    expected new tokens per second, or 0 when no length beats not drafting by MIN_GAIN.

    batch_tokens: the tokens the step holds already; sampled: the new tokens it is expected to
    yield without this draft (one per slot sampling, plus other drafts' expected gains)."""
    base = costs.cost(batch_tokens)
    if available <= 0 or base is None:
        return 0  # nothing to feed, or the costs are not measured yet
    best, best_rate = 0, sampled / base
    gain, p = 0.0, 1.0
    for d in range(1, available + 1):
        p *= q
        gain += p  # expected_gain(q, d), one term at a time
        rate = (sampled + gain) / costs.cost(batch_tokens + d)
        if rate > best_rate:
            best, best_rate = d, rate
    return best if best_rate >= (1 + MIN_GAIN) * sampled / base else 0


class NgramIndex:
    """Where each n-gram (n from ngram_min to ngram_max) of a growing token sequence last
    occurred, keyed by its tokens, valued by the position of the token that followed it."""

    def __init__(self, ngram_min: int, ngram_max: int):
        self.ngram_min = ngram_min
        self.ngram_max = ngram_max
        self.tokens: list[int] = []
        self._next: dict[tuple[int, ...], int] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def append(self, token: int) -> None:
        # The n-grams ending just before `token` now have a known follower: `token`. The suffix
        # that ends with it is registered only when the token after it arrives, so a lookup of
        # the current suffix always finds an EARLIER occurrence.
        tokens, at = self.tokens, len(self.tokens)
        for n in range(self.ngram_min, min(self.ngram_max, at) + 1):
            self._next[tuple(tokens[at - n:at])] = at
        tokens.append(token)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self.append(token)

    def draft(self, max_len: int) -> list[int]:
        """The tokens that followed the latest earlier occurrence of the longest suffix found."""
        tokens, end = self.tokens, len(self.tokens)
        for n in range(min(self.ngram_max, end), self.ngram_min - 1, -1):
            at = self._next.get(tuple(tokens[end - n:]))
            if at is not None:
                return tokens[at:at + max_len]
        return []


class DraftControl:
    """One slot's estimate of how its drafts fare, and when it rests from drafting."""

    def __init__(self, max_draft: int):
        self.max_draft = max_draft
        self._accepted = PRIOR_ACCEPTED
        self._rejected = PRIOR_REJECTED
        self._rest = 0     # steps left without drafting
        self._rest_length = REST_STEPS  # the next rest's length
        self._probe = False
        self._cap = min(FIRST_DRAFT, max_draft)  # the longest draft allowed next

    @property
    def q(self) -> float:
        """The chance the next drafted token is accepted."""
        return self._accepted / (self._accepted + self._rejected)

    @property
    def cap(self) -> int:
        """The longest draft allowed next."""
        return self._cap

    @property
    def probing(self) -> bool:
        return self._probe and not self._rest

    def allowed(self) -> int:
        """Called once per generating step of the slot: how much of a draft to look up (0 while
        it rests; `cap` says how much of it may be fed)."""
        if self._rest:
            self._rest -= 1
            return 0
        return self.max_draft

    def decline(self) -> None:
        """Drafting would not pay even alone in a step: rest, then probe."""
        if not self._probe:
            self._rest = self._rest_length
            self._probe = True

    def record(self, drafted: int, accepted: int) -> None:
        rejected = 1.0 if accepted < drafted else 0.0
        self._accepted = ACCEPTANCE_DECAY * self._accepted + accepted
        self._rejected = ACCEPTANCE_DECAY * self._rejected + rejected
        self._cap = min(self.max_draft, 2 * self._cap if not rejected else accepted + 1)
        if self._probe:
            self._probe = False
            if accepted:  # the text copies again: drafting resumes from a fresh start
                self._accepted, self._rejected = PRIOR_ACCEPTED, PRIOR_REJECTED
                self._rest_length = REST_STEPS
                self._cap = min(FIRST_DRAFT, self.max_draft)
                return
            # Still nothing to copy: rest again at once, twice as long.
            self._rest_length = min(2 * self._rest_length, MAX_REST_STEPS)
            self._rest = self._rest_length
            self._probe = True


class SlotSpeculation:
    """One job's speculation state: the index of its context, its draft control, its counts."""

    def __init__(self, config: SpecConfig):
        self.index = NgramIndex(config.ngram_min, config.ngram_max)
        self.control = DraftControl(config.max_draft)
        self.drafted = 0
        self.accepted = 0

    def propose(self, cached: Sequence[int], pending: Sequence[int], limit: int) -> list[int]:
        """A draft to feed after `pending` (at most `limit` tokens). `cached + pending` is the
        slot's whole context; it only grows while a job runs, so the index catches up by
        appending what it has not seen."""
        if limit <= 0:
            return []
        allowed = self.control.allowed()
        if not allowed:
            return []
        index = self.index
        seen = len(index)
        if seen < len(cached):
            index.extend(cached[seen:])
        index.extend(pending[len(index) - len(cached):])
        return index.draft(min(allowed, limit))

    def choose(self, candidate: list[int], batch_tokens: int, sampled: float,
               costs: StepCosts) -> list[int]:
        """The part of a proposed draft worth feeding in a step that holds `batch_tokens`
        tokens already and is expected to yield `sampled` new ones (best_draft)."""
        control = self.control
        if control.probing:
            # One token, to learn whether the text copies again; made when the whole draft at a
            # copying text's rate would pay in this step (not in a step already full).
            pays = best_draft(PROBE_ACCEPTANCE, len(candidate), batch_tokens, sampled, costs)
            return candidate[:1] if pays else []
        candidate = candidate[:control.cap]
        n = best_draft(control.q, len(candidate), batch_tokens, sampled, costs)
        if n == 0 and best_draft(control.q, len(candidate), 1, 1.0, costs) == 0:
            control.decline()  # not even alone in a step: the text does not copy now
        return candidate[:n]

    def record(self, drafted: int, accepted: int) -> None:
        self.drafted += drafted
        self.accepted += accepted
        self.control.record(drafted, accepted)
