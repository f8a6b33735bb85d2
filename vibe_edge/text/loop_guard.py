"""Detect a reasoning trace that has started repeating itself.

On long or off-domain tasks VibeThinker can fall into a loop ("but but we we but but we we",
or one sentence over and over) and would burn its whole token budget there. The guard watches
token ids and reports when the recent trace is (almost) exactly periodic.

What counts as a loop: for some period p in 1..max_period, the last span(p) tokens satisfy
token[i] == token[i - p] except for a small tolerance of mismatches, where
span(p) = max(min_span, min_repeats * p). So short periods need a long run (256 tokens of
"but we" is unmistakable) and long periods need at least `min_repeats` full cycles (two copies
of a long passage can be a legitimate re-quote; three in a row is a loop).

What does not: varied text never matches itself at a fixed shift for hundreds of tokens, and
progressing enumerations ("1, 2, 3, ..." or "n = 17: ...; n = 18: ...") change at least one
token every cycle, which is far above the tolerance for the short cycles such lists have.
Known blind spot, by design: genuinely constant output (a large all-zero matrix) looks like a
loop, because token for token it is one.

Cost: `feed` is an append; every `check_every` tokens a check runs whose common path is one
index comparison per period. The full count of mismatches only runs for periods whose most
recent tokens already repeat, which in ordinary text is rare.
"""

from __future__ import annotations

from operator import ne

__all__ = [
    "DEFAULT_MAX_PERIOD",
    "DEFAULT_MIN_SPAN",
    "DEFAULT_MIN_REPEATS",
    "DEFAULT_CHECK_EVERY",
    "DEFAULT_TOLERANCE",
    "LoopGuard",
]

DEFAULT_MAX_PERIOD = 128
"""Longest repeating unit caught, in tokens: a sentence or two of reasoning."""

DEFAULT_MIN_SPAN = 256
"""Shortest run that can count as a loop. Long enough that no real sentence structure, list or
formula repeats exactly at a fixed shift over it; short enough to stop a loop within about 20 s
at edge decode speeds (~15 tokens/s)."""

DEFAULT_MIN_REPEATS = 3
"""Full cycles a long unit must show: span(p) = max(min_span, min_repeats * p)."""

DEFAULT_CHECK_EVERY = 16
"""Tokens between checks: bounds the cost per token and delays detection by at most this."""

DEFAULT_TOLERANCE = 0.02
"""Mismatch share allowed inside the span, for a sampling hiccup in an otherwise exact loop
(a substituted token costs two mismatches: entering and leaving its cycle). Kept well below
1/50 of a cycle: an enumeration that changes one token per cycle of fewer than 50 tokens is
progressing, not looping."""

# The most recent tokens must repeat exactly one period back before the full (more expensive)
# count runs. A real loop has clean stretches, and the check repeats every `check_every` tokens.
_PROBE = 8


class LoopGuard:
    """Feed token ids one at a time; `feed` returns True once the trace is looping.

    Detection latches: after the first True every feed returns True until `reset`.
    """

    def __init__(
        self,
        *,
        max_period: int = DEFAULT_MAX_PERIOD,
        min_span: int = DEFAULT_MIN_SPAN,
        check_every: int = DEFAULT_CHECK_EVERY,
        min_repeats: int = DEFAULT_MIN_REPEATS,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        if max_period < 1:
            raise ValueError(f"max_period must be >= 1, got {max_period}")
        if min_span < 2 * _PROBE or min_span <= max_period:
            raise ValueError(f"min_span must be > max_period and >= {2 * _PROBE}, got {min_span}")
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every}")
        if min_repeats < 2:
            raise ValueError(f"min_repeats must be >= 2, got {min_repeats}")
        if not 0.0 <= tolerance < 0.5:
            raise ValueError(f"tolerance must be in [0, 0.5), got {tolerance}")
        self.max_period = max_period
        self.min_span = min_span
        self.check_every = check_every
        self.min_repeats = min_repeats
        self.tolerance = tolerance
        self._window = max(min_span, min_repeats * max_period)
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new request, or the think block closed)."""
        self._tokens: list[int] = []
        self._seen = 0
        self._period: int | None = None

    @property
    def period(self) -> int | None:
        """The detected loop's period in tokens, None while no loop was seen."""
        return self._period

    @property
    def triggered(self) -> bool:
        return self._period is not None

    @property
    def tokens_seen(self) -> int:
        return self._seen

    def feed(self, token_id: int) -> bool:
        """Record one generated token; True once a loop has been detected."""
        if self._period is not None:
            return True
        self._tokens.append(token_id)
        self._seen += 1
        # Trim in bulk, not per token: amortised O(1) and the list stays at most 2x the window.
        if len(self._tokens) >= 2 * self._window:
            del self._tokens[: -self._window]
        if self._seen % self.check_every == 0 and len(self._tokens) >= self.min_span:
            self._period = self._find_period()
        return self._period is not None

    def _find_period(self) -> int | None:
        tokens = self._tokens
        n = len(tokens)
        last = tokens[-1]
        for p in range(1, self.max_period + 1):
            span = max(self.min_span, self.min_repeats * p)
            if span > n:
                break  # span only grows with p
            if tokens[n - 1 - p] != last:
                continue
            if tokens[n - _PROBE:] != tokens[n - _PROBE - p:n - p]:
                continue
            window = tokens[n - span:]
            mismatches = sum(map(ne, window[p:], window[:-p]))
            if mismatches <= self.tolerance * (span - p):
                return p
        return None
