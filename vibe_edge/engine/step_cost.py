"""What one decode step costs by how many tokens it holds, as measured on this machine: the
figure that says whether, and how long, a speculative draft pays (engine/speculate.py).

Machines differ too much for a constant. On the 2-core AVX2 EPYC one step of 1, 2, 4, 8, 16
tokens of one sequence took 1, 1.6, 1.9, 3.7, 5.2x one token; on the 2-core AVX-512 EPYC 1,
1.8, 3.0, 5.9, 6.3x (llama.cpp moves to its matrix-matrix kernels past a few tokens, so 16
tokens cost little more than 8); on a GPU a step is memory-bound and 16 tokens cost about one.

So the scheduler measures, once per engine: at the first step a speculating request generates,
it decodes CALIBRATION_SIZES dummy tokens after that slot's context (and takes them out of the
KV again), a warm-up round and then CALIBRATION_ROUNDS timed ones, and keeps the least time of
each size (a step is slowed by the host far more often than sped up). The table then stays as
measured: draft lengths are a function of it and of the request's own tokens, so a seeded
request repeats exactly on one engine (re-measuring as it runs would make the batches, and with
them the last bits of the logits, depend on the host's load). This costs about 2 seconds once on
the 2-core CPU with the 1.5B model, a fraction of that on a GPU.

Between measured sizes the cost is interpolated linearly; past the largest it is extrapolated
from the last two.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable

__all__ = ["CALIBRATION_SIZES", "StepCosts"]

CALIBRATION_SIZES = (1, 2, 4, 8, 16)
CALIBRATION_ROUNDS = 2


class StepCosts:
    def __init__(self) -> None:
        self._cost: dict[int, float] = {}
        self._sizes: list[int] = []  # measured token counts, sorted

    @classmethod
    def of(cls, measured: Iterable[tuple[int, float]]) -> StepCosts:
        """A table of given (tokens, seconds) steps (SpecConfig.step_costs, tests)."""
        costs = cls()
        for tokens, seconds in measured:
            costs.record(tokens, seconds)
        return costs

    @property
    def calibrated(self) -> bool:
        return bool(self._sizes)

    def record(self, tokens: int, seconds: float) -> None:
        """A measured step: the least time seen for its size is kept."""
        if tokens < 1 or seconds <= 0:
            return
        if tokens not in self._cost:
            bisect.insort(self._sizes, tokens)
            self._cost[tokens] = seconds
        else:
            self._cost[tokens] = min(self._cost[tokens], seconds)

    def calibrate(self, decode: Callable[[int], None], sizes: tuple[int, ...] = CALIBRATION_SIZES,
                  rounds: int = CALIBRATION_ROUNDS) -> None:
        """decode(n): run one step of n tokens (the caller places them and takes them back)."""
        for n in sizes:
            decode(n)  # warm-up: the first step of a new size rebuilds llama.cpp's graph
        for _ in range(rounds):
            for n in sizes:
                started = time.perf_counter()
                decode(n)
                self.record(n, time.perf_counter() - started)

    def cost(self, tokens: int) -> float | None:
        """Seconds a step of `tokens` tokens takes (None: not measured)."""
        sizes = self._sizes
        if not sizes:
            return None
        if tokens in self._cost:
            return self._cost[tokens]
        at = bisect.bisect_left(sizes, tokens)
        if at == 0:
            return self._cost[sizes[0]]
        if at == len(sizes):
            if len(sizes) == 1:
                return self._cost[sizes[0]] * tokens / sizes[0]
            lo_n, hi_n = sizes[-2], sizes[-1]
        else:
            lo_n, hi_n = sizes[at - 1], sizes[at]
        low, high = self._cost[lo_n], self._cost[hi_n]
        return max(low, low + (high - low) * (tokens - lo_n) / (hi_n - lo_n))
