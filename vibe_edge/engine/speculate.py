"""Speculative decoding by n-gram lookup in a slot's own context (prompt lookup decoding).

Math and code repeat themselves: an answer restates the given code, a proof the problem's
expressions, a reasoning trace its own earlier lines. So the tokens that followed the latest
earlier occurrence of the context's last few tokens are a good guess for what comes next. The
scheduler feeds that guess (the draft) after the slot's real token in the step's one batch,
samples at every drafted position in order, and keeps the drafted tokens for as long as the
sampler draws exactly them (see Scheduler._verify). No second model, and the output is the one
plain decoding would give: each token is still drawn by the request's own sampler chain, in
order, from the logits of the context it would have had.

A draft costs: on a CPU a verify of 1 + 3 tokens takes about 1.9x a single-token step. So each
slot's DraftControl follows how its recent drafts fared, drafts shorter when they fail, and
rests a while after a run of failures; text with nothing to copy then costs a few failed probes
per hundred tokens, not a slower stream: each probe that fails doubles the next rest (a text
that had nothing to copy for the last 50 tokens rarely starts copying in the next 10), and one
that succeeds ends the resting.
"""

from __future__ import annotations

from collections.abc import Sequence

from vibe_edge.types import SpecConfig

__all__ = ["DraftControl", "NgramIndex", "SlotSpeculation"]

# DraftControl's tuning, measured on the 2-core CPU (docs/BENCHMARKS.md, `bench --suite spec`).
# The acceptance rate is a moving average over drafts, starting optimistic so a slot's first
# drafts are full length.
ACCEPTANCE_DECAY = 0.5
FULL_DRAFT_ACCEPTANCE = 0.7   # at or above: draft max_draft tokens
SHORT_DRAFT_ACCEPTANCE = 0.5  # at or above: one fewer; below: one token
MIN_ACCEPTANCE = 0.35         # below this for PATIENCE drafts in a row: rest
PATIENCE = 2
REST_STEPS = 24               # steps without drafting, then a one-token probe...
MAX_REST_STEPS = 384          # ...each failed probe doubling the next rest, up to this


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
    """How many tokens a slot may draft next, from how its recent drafts fared."""

    def __init__(self, max_draft: int):
        self.max_draft = max_draft
        self.acceptance = 1.0
        self._low = 0      # drafts in a row below MIN_ACCEPTANCE
        self._rest = 0     # steps left without drafting
        self._rest_length = REST_STEPS  # the next rest's length
        self._probe = False

    def allowed(self) -> int:
        """Called once per generating step of the slot; 0 while it rests."""
        if self._rest:
            self._rest -= 1
            return 0
        if self._probe or self.acceptance < SHORT_DRAFT_ACCEPTANCE:
            return 1
        if self.acceptance < FULL_DRAFT_ACCEPTANCE:
            return max(1, self.max_draft - 1)
        return self.max_draft

    def record(self, drafted: int, accepted: int) -> None:
        rate = accepted / drafted
        if self._probe:
            self._probe = False
            if accepted:  # the text copies again: start from a neutral estimate
                self.acceptance = SHORT_DRAFT_ACCEPTANCE
                self._low = 0
                self._rest_length = REST_STEPS
                return
            # Still nothing to copy: rest again at once, twice as long.
            self._rest_length = min(2 * self._rest_length, MAX_REST_STEPS)
            self._rest = self._rest_length
            self._probe = True
            return
        self.acceptance = ACCEPTANCE_DECAY * self.acceptance + (1 - ACCEPTANCE_DECAY) * rate
        self._low = self._low + 1 if self.acceptance < MIN_ACCEPTANCE else 0
        if self._low >= PATIENCE:
            self._low = 0
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

    def record(self, drafted: int, accepted: int) -> None:
        self.drafted += drafted
        self.accepted += accepted
        self.control.record(drafted, accepted)
