"""n samples on the real engine and the demo model: the KV copy gives what a fresh prefill
gives, seeds make samples differ, the prompt is evaluated once, cancel ends every sample."""

from __future__ import annotations

import time

import pytest

from vibe_edge.engine import Engine, EngineConfig, Finished, GenerationRequest, SamplingParams, SpecConfig
from vibe_edge.errors import InvalidRequest
from vibe_edge.types import FinishReason, SampleFinished, TextDelta

PROMPT = "Once upon a time, in a small village,"


@pytest.fixture(scope="module")
def engine(demo_model):
    # Speculation off: these tests compare samples token for token, and a slot that drafts
    # decodes in a larger batch (llama.cpp's CPU kernels are not batch-invariant at near ties).
    with Engine(EngineConfig(model_path=demo_model, n_slots=4, ctx_per_slot=512,
                             spec=SpecConfig(enabled=False))) as eng:
        yield eng


def test_greedy_samples_from_the_copied_kv_equal_a_fresh_prefill(engine):
    engine.reset_cache()
    solo = engine.generate(GenerationRequest(prompt=PROMPT, sampling=SamplingParams(temperature=0),
                                             max_tokens=24))
    engine.reset_cache()
    result = engine.generate(GenerationRequest(prompt=PROMPT, sampling=SamplingParams(temperature=0),
                                               max_tokens=24, n=3), timeout=120)
    assert [s.text for s in result.samples] == [solo.text] * 3
    evaluated = [s.stats.prompt_tokens - s.stats.cached_tokens for s in result.samples]
    assert evaluated == [solo.stats.prompt_tokens, 0, 0], "the prompt is evaluated once"
    assert all(s.stats.ttft_ms is not None for s in result.samples)


def test_seeded_samples_differ_and_repeat(engine):
    def run():
        return engine.generate(GenerationRequest(
            prompt=PROMPT, sampling=SamplingParams(temperature=1.0, top_k=0, min_p=0, seed=42),
            max_tokens=24, n=3), timeout=120)

    first, again = run(), run()
    texts = [s.text for s in first.samples]
    assert len(set(texts)) == 3, texts
    assert [s.text for s in again.samples] == texts
    # Sample i of a seeded request is the single request with seed + i.
    one = engine.generate(GenerationRequest(
        prompt=PROMPT, sampling=SamplingParams(temperature=1.0, top_k=0, min_p=0, seed=43), max_tokens=24))
    assert one.text == texts[1]


def test_events_say_which_sample_they_belong_to_and_finished_comes_last(engine):
    handle = engine.submit(GenerationRequest(prompt=PROMPT, sampling=SamplingParams(seed=1),
                                             max_tokens=8, n=2))
    events = list(handle)
    assert isinstance(events[-1], Finished) and sum(isinstance(e, Finished) for e in events) == 1
    by_sample = {0: "", 1: ""}
    for event in events:
        if isinstance(event, TextDelta):
            by_sample[event.sample] += event.text
    finals = {e.sample: e.result for e in events if isinstance(e, SampleFinished)}
    assert {i: r.text for i, r in finals.items()} == by_sample
    assert [r.sample for r in events[-1].result.samples] == [0, 1]


def test_cancel_ends_every_sample_and_frees_the_slots(engine):
    handle = engine.submit(GenerationRequest(prompt=PROMPT, max_tokens=400, n=3,
                                             sampling=SamplingParams(logit_bias={t: -100.0 for t in engine.eog_tokens()})))
    for event in handle:
        if isinstance(event, TextDelta):
            break
    handle.cancel()
    result = handle.result(30)
    assert [s.finish_reason for s in result.samples] == [FinishReason.CANCELLED] * 3
    deadline = time.monotonic() + 5
    while engine.status().busy_slots and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.status().busy_slots == 0


def test_more_samples_than_slots_is_refused(engine):
    with pytest.raises(InvalidRequest) as info:
        engine.submit(GenerationRequest(prompt=PROMPT, n=5))
    assert info.value.param == "n"
    with pytest.raises(InvalidRequest):
        engine.submit(GenerationRequest(prompt=PROMPT, n=0))
    with pytest.raises(InvalidRequest) as info:
        engine.submit(GenerationRequest(prompt=PROMPT, n=2, seeds=[1]))
    assert info.value.param == "seeds"


def test_vote_on_the_demo_model_carries_a_winner_and_every_answer(engine):
    result = engine.generate(GenerationRequest(
        messages=[{"role": "user", "content": "What is 2+2? Answer with just the number."}],
        sampling=SamplingParams(temperature=0), max_tokens=16, n=3, vote=True), timeout=120)
    vote = result.vote
    assert vote is not None and vote.winner is not None
    assert vote.tally() == {vote.winner.answer: 3}  # greedy: three identical answers
    assert result.text == result.samples[vote.winner.samples[0]].text
