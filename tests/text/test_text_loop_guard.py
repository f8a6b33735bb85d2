"""LoopGuard: catches a trace repeating itself, never fires on varied or progressing text."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibe_edge.text.loop_guard import (
    DEFAULT_CHECK_EVERY,
    DEFAULT_MAX_PERIOD,
    DEFAULT_MIN_REPEATS,
    DEFAULT_MIN_SPAN,
    LoopGuard,
)

VOCAB = 151_936  # Qwen2 vocabulary

# Qwen2's tokenizer splits numbers into single digits; ids of "0".."9", ",", " " and friends.
DIGIT = {str(d): 15 + d for d in range(10)}
COMMA, SPACE, NEWLINE, EQUALS = 11, 220, 198, 284


def number_tokens(n: int) -> list[int]:
    return [DIGIT[c] for c in str(n)]


def first_trigger(guard: LoopGuard, tokens: list[int]) -> int | None:
    """Index of the token on which the guard first reported a loop, or None."""
    for index, token in enumerate(tokens):
        if guard.feed(token):
            return index
    return None


def varied(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(VOCAB) for _ in range(count)]


def latency_bound(period: int) -> int:
    # The window must lie inside the loop, then the next scheduled check sees it.
    return max(DEFAULT_MIN_SPAN, DEFAULT_MIN_REPEATS * period) + DEFAULT_CHECK_EVERY


BUT_WE = [1084, 1084, 582, 582]  # " but but we we"


@pytest.mark.parametrize("unit", [
    [1084],                       # " but but but ..."
    [1084, 582],                  # " but we but we ..."
    BUT_WE,
    varied(7, seed=7),
    varied(40, seed=40),          # one 40-token sentence over and over
    varied(64, seed=64),
    varied(100, seed=100),
    varied(DEFAULT_MAX_PERIOD, seed=128),
])
@pytest.mark.parametrize("prefix_len", [0, 333])
def test_periodic_loops_trigger_quickly(unit: list[int], prefix_len: int) -> None:
    guard = LoopGuard()
    loop = unit * (2 * latency_bound(len(unit)) // len(unit) + 2)
    tokens = varied(prefix_len, seed=1) + loop
    hit = first_trigger(guard, tokens)
    assert hit is not None, f"period {len(unit)} not caught"
    assert prefix_len <= hit < prefix_len + latency_bound(len(unit))
    assert guard.triggered
    # The reported period is the unit's (or, for a unit that is itself periodic, its root).
    assert guard.period is not None and len(unit) % guard.period == 0


def test_loop_with_occasional_sampling_noise_still_triggers() -> None:
    rng = random.Random(5)
    unit = varied(30, seed=30)
    tokens = unit * 60
    for i in range(50, len(tokens), 150):  # a stray token every 150
        tokens[i] = rng.randrange(VOCAB)
    hit = first_trigger(LoopGuard(), tokens)
    assert hit is not None and hit < 2 * latency_bound(30)


def test_longer_than_max_period_is_not_a_loop_for_this_guard() -> None:
    unit = varied(DEFAULT_MAX_PERIOD + 1, seed=3)
    assert first_trigger(LoopGuard(), unit * 6) is None


def test_two_copies_of_a_long_passage_are_not_a_loop() -> None:
    # Re-quoting a long passage once is legitimate; three copies in a row are not.
    passage = varied(DEFAULT_MAX_PERIOD, seed=9)
    # The prefix length puts a scheduled check exactly at the end of the second copy, where the
    # last 2 * 128 = min_span tokens are perfectly periodic.
    prefix = varied(13 * DEFAULT_CHECK_EVERY, seed=8)
    assert (len(prefix) + 2 * len(passage)) % DEFAULT_CHECK_EVERY == 0
    assert first_trigger(LoopGuard(), prefix + passage * 2 + varied(200, seed=10)) is None
    # (plus the start of a fourth, so that a scheduled check falls inside the loop)
    assert first_trigger(LoopGuard(), passage * 3 + passage[:DEFAULT_CHECK_EVERY]) is not None


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), vocab=st.sampled_from([3, 10, 1000, VOCAB]),
       length=st.integers(DEFAULT_MIN_SPAN, 4000))
def test_random_streams_never_trigger(seed: int, vocab: int, length: int) -> None:
    # Uniformly random ids (hypothesis picks the seed; its own lists favour runs of zeros, which
    # are a loop). A tiny vocabulary is the hard case: tokens repeat constantly, just not
    # periodically.
    rng = random.Random(seed)
    assert first_trigger(LoopGuard(), [rng.randrange(vocab) for _ in range(length)]) is None


def test_counting_with_distinct_tokens_never_triggers() -> None:
    assert first_trigger(LoopGuard(), list(range(10_000))) is None


def test_counting_in_digits_never_triggers() -> None:
    # "1, 2, 3, ..., 20000" as Qwen2 tokenizes it: period 3..7, one digit changing per cycle.
    tokens: list[int] = []
    for n in range(1, 20_001):
        tokens += number_tokens(n) + [COMMA, SPACE]
    assert first_trigger(LoopGuard(), tokens) is None


def test_progressing_enumeration_never_triggers() -> None:
    # "For n = 17, n^2 + n + 41 = 347, which is prime.\n" for n = 1..200: a 25-30 token sentence
    # identical apart from its numbers, which is the model working, not looping.
    sentence = varied(18, seed=18)
    tokens: list[int] = []
    for n in range(1, 201):
        tokens += sentence[:3] + number_tokens(n) + [COMMA] + sentence[3:10] + [EQUALS, SPACE]
        tokens += number_tokens(n * n + n + 41) + sentence[10:] + [NEWLINE]
    assert first_trigger(LoopGuard(), tokens) is None


def test_latches_until_reset() -> None:
    guard = LoopGuard()
    assert first_trigger(guard, [7] * 400) is not None
    assert guard.feed(12345) is True
    guard.reset()
    assert not guard.triggered and guard.period is None and guard.tokens_seen == 0
    assert first_trigger(guard, varied(1000, seed=2)) is None


def test_checks_only_every_check_every_tokens() -> None:
    guard = LoopGuard(check_every=50)
    hit = first_trigger(guard, [7] * 1000)
    assert hit is not None and (hit + 1) % 50 == 0


def test_memory_stays_bounded() -> None:
    guard = LoopGuard()
    for token in varied(20_000, seed=4):
        guard.feed(token)
    assert len(guard._tokens) < 2 * max(DEFAULT_MIN_SPAN, DEFAULT_MIN_REPEATS * DEFAULT_MAX_PERIOD)


@pytest.mark.parametrize("kwargs", [
    {"max_period": 0}, {"min_span": 8}, {"min_span": 100, "max_period": 100}, {"check_every": 0},
    {"min_repeats": 1}, {"tolerance": 0.5}, {"tolerance": -0.1},
])
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoopGuard(**kwargs)
