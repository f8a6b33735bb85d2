"""LlamaBackend on the real demo model: the KV edits the scheduler relies on (and `n` samples and
speculative decoding will), checked against a fresh prefill."""

from __future__ import annotations

import pytest

from vibe_edge.engine._llama import Context, ContextParams, Model, Sampler
from vibe_edge.engine.backend import LlamaBackend
from vibe_edge.types import SamplingParams

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def backend(demo_model):
    model = Model(str(demo_model))
    ctx = Context(model, ContextParams(n_seq=3, ctx_per_seq=256, n_batch=64, threads=2, threads_batch=2))
    yield LlamaBackend(model, ctx)
    ctx.close()
    model.close()


def _prefill(backend: LlamaBackend, batch, tokens: list[int], seq: int, start: int = 0) -> int:
    batch.clear()
    index = -1
    for i, token in enumerate(tokens):
        index = batch.add(token, start + i, seq, i == len(tokens) - 1)
    assert backend.decode(batch) == 0
    return index


def _greedy_continuation(backend: LlamaBackend, batch, seq: int, first: int, pos: int, n: int) -> list[int]:
    sampler = Sampler(backend.model, GREEDY, 0)
    out = [first]
    try:
        for _ in range(n):
            batch.clear()
            index = batch.add(out[-1], pos, seq, True)
            assert backend.decode(batch) == 0
            out.append(backend.sample(sampler, index))
            pos += 1
    finally:
        sampler.close()
    return out


def test_a_copied_prompt_continues_exactly_as_a_fresh_prefill(backend):
    prompt = backend.model.tokenize("The three primary colors are", add_special=True)
    batch = backend.new_batch(64)
    try:
        for seq in range(3):
            backend.remove(seq)
        index = _prefill(backend, batch, prompt, seq=0)
        sampler = Sampler(backend.model, GREEDY, 0)
        first = backend.sample(sampler, index)
        sampler.close()
        fresh = _greedy_continuation(backend, batch, 0, first, len(prompt), 8)

        # Sequence 1 gets the prompt's KV by copy, never by prefill, then decodes from it.
        backend.remove(0, len(prompt), -1)
        backend.copy(0, 1)
        assert backend.ctx.seq_pos_max(1) == len(prompt) - 1
        copied = _greedy_continuation(backend, batch, 1, first, len(prompt), 8)
        assert copied == fresh
    finally:
        batch.close()


def test_removing_drafted_positions_leaves_the_kv_as_before_them(backend):
    prompt = backend.model.tokenize("1, 2, 3, 4,", add_special=True)
    batch = backend.new_batch(64)
    try:
        backend.remove(2)
        index = _prefill(backend, batch, prompt, seq=2)
        sampler = Sampler(backend.model, GREEDY, 0)
        first = backend.sample(sampler, index)
        sampler.close()
        # Feed three "drafted" tokens with logits at each, then reject them all.
        batch.clear()
        for i, token in enumerate([first, 99, 98]):
            batch.add(token, len(prompt) + i, 2, True)
        assert backend.decode(batch) == 0
        backend.remove(2, len(prompt), -1)
        assert backend.ctx.seq_pos_max(2) == len(prompt) - 1
        again = _greedy_continuation(backend, batch, 2, first, len(prompt), 6)
        backend.remove(2)
        _prefill(backend, batch, prompt, seq=2)
        assert again == _greedy_continuation(backend, batch, 2, first, len(prompt), 6)
    finally:
        batch.close()
