"""Speculative decoding: the n-gram drafter on its own, then the real engine on the demo model
with speculation on against the same engine with it off."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vibe_edge.engine import (
    Engine,
    EngineConfig,
    FinishReason,
    GenerationRequest,
    ReasoningOptions,
    SamplingParams,
    SpecConfig,
    TextDelta,
)
from vibe_edge.engine.scoring import LogitsRunner
from vibe_edge.engine.speculate import (
    FIRST_DRAFT,
    MAX_REST_STEPS,
    REST_STEPS,
    DraftControl,
    NgramIndex,
    SlotSpeculation,
    best_draft,
)
from vibe_edge.engine.step_cost import StepCosts
from vibe_edge.errors import SettingsError

GREEDY = SamplingParams(temperature=0.0)
CTX = 1024
# Asked to copy a block of code: the answer repeats the prompt, the case speculation is for.
CODE = """def area(width, height):
    return width * height


def perimeter(width, height):
    return 2 * (width + height)


def describe(width, height):
    return f"{width}x{height}: area {area(width, height)}, perimeter {perimeter(width, height)}"
"""
COPY_PROMPT = (f"<|im_start|>user\nRepeat this code exactly, nothing else:\n\n{CODE}<|im_end|>\n"
               "<|im_start|>assistant\n```python\n")
PROSE_PROMPT = "<|im_start|>user\nWrite a short poem about the sea.<|im_end|>\n<|im_start|>assistant\n"
# Near a tie llama.cpp's logits depend on how many tokens a batch holds (its CPU kernels are not
# batch-invariant), so a greedy choice between two tokens this close may flip. vLLM documents
# the same caveat for its speculative decoding.
TIE_GAP = 0.5


# -- the drafter on its own -----------------------------------------------------------------------

def test_index_drafts_what_followed_the_latest_earlier_occurrence():
    index = NgramIndex(2, 3)
    index.extend([1, 2, 3, 4, 9, 1, 2, 3, 5, 7, 1, 2, 3])
    assert index.draft(4) == [5, 7, 1, 2]  # the later "1 2 3" (followed by 5), not the first


def test_index_prefers_the_longest_suffix_and_never_matches_itself():
    index = NgramIndex(1, 3)
    index.extend([8, 2, 3, 6, 5, 2, 3, 7, 4, 2, 3])
    assert index.draft(1) == [7]        # "2 3" last followed by 7...
    index.extend([6])
    assert index.draft(2) == [5, 2]     # ..."2 3 6" followed by 5 beats "3 6" / "6"
    fresh = NgramIndex(2, 4)
    fresh.extend([1, 2, 3])
    assert fresh.draft(3) == []         # the suffix has occurred only as itself


# One decode step of n tokens on the two CPUs measured (docs/BENCHMARKS.md), and a GPU-like one.
AVX512_CPU = {1: 33.1, 2: 58.2, 4: 100.1, 8: 195.2, 16: 209.4}
AVX2_CPU = {1: 99.0, 2: 160.0, 4: 190.0, 8: 370.0, 16: 514.0}
GPU_LIKE = {1: 10.0, 2: 10.1, 4: 10.2, 8: 10.5, 16: 11.0}
COMPUTE_BOUND = {n: 30.0 * n for n in (1, 2, 4, 8, 16)}  # every token costs a whole step


def test_step_costs_keep_the_least_time_and_interpolate():
    costs = StepCosts()
    assert costs.cost(4) is None and not costs.calibrated
    costs.record(1, 0.030)
    costs.record(1, 0.050)      # a slow step (host busy) does not raise the cost
    costs.record(8, 0.190)
    assert costs.calibrated and costs.cost(1) == 0.030
    assert costs.cost(4) == pytest.approx(0.030 + 0.160 * 3 / 7)   # between two measured sizes
    assert costs.cost(15) == pytest.approx(0.030 + 0.160 * 14 / 7)  # past the largest: the trend


def test_calibration_times_each_size_after_a_warm_up():
    costs, calls = StepCosts(), []

    def decode(n):
        calls.append(n)
        time.sleep(0.001 * n)

    costs.calibrate(decode, sizes=(1, 4), rounds=2)
    assert calls == [1, 4, 1, 4, 1, 4]
    assert 0.001 <= costs.cost(1) < costs.cost(4)


def test_best_draft_follows_the_machine_and_the_acceptance():
    # Copying code (q 0.96): long drafts where a 16-token step is cheap per token...
    assert best_draft(0.96, 15, 1, 1.0, StepCosts.of(AVX512_CPU.items())) == 15
    assert best_draft(0.96, 15, 1, 1.0, StepCosts.of(GPU_LIKE.items())) == 15
    # ...prose (q 0.3): none on either CPU, some on a GPU, where a failed guess costs nothing.
    assert best_draft(0.3, 15, 1, 1.0, StepCosts.of(AVX512_CPU.items())) == 0
    assert best_draft(0.3, 15, 1, 1.0, StepCosts.of(AVX2_CPU.items())) == 0
    assert best_draft(0.3, 15, 1, 1.0, StepCosts.of(GPU_LIKE.items())) >= 1
    # Where every token costs a step, a step of four generating slots is full: nothing pays.
    assert best_draft(0.95, 12, 4, 4.0, StepCosts.of(COMPUTE_BOUND.items())) == 0
    # On the measured CPUs a 16-token step costs far less per token than a 4-token one, so a
    # slot that copies well still pays its way beside three others.
    assert best_draft(0.95, 12, 4, 4.0, StepCosts.of(AVX512_CPU.items())) == 12
    # Nothing measured yet: no drafts (the scheduler measures first).
    assert best_draft(0.99, 3, 1, 1.0, StepCosts()) == 0
    assert best_draft(0.9, 0, 1, 1.0, StepCosts.of(GPU_LIKE.items())) == 0


def _prose_slot() -> SlotSpeculation:
    return SlotSpeculation(SpecConfig(enabled=True, max_draft=15))


def _rest(control: DraftControl) -> int:
    """Steps the control rests before it may draft again."""
    steps = 0
    while control.allowed() == 0:
        steps += 1
    return steps


def test_a_slot_that_fails_rests_and_failed_probes_double_the_rest():
    slot = _prose_slot()
    control, costs = slot.control, StepCosts.of(AVX512_CPU.items())
    candidate = list(range(15))
    assert len(slot.choose(candidate, 1, 1.0, costs)) == FIRST_DRAFT  # a short first draft
    while True:                    # drafts fail until drafting stops paying
        chosen = slot.choose(candidate, 1, 1.0, costs)
        if not chosen:
            break
        slot.record(len(chosen), 0)
    assert control.q < 0.85  # one or two failed drafts: no longer worth drafting on this CPU
    rests = []
    for _ in range(6):
        rests.append(_rest(control))
        probe = slot.choose(candidate, 1, 1.0, costs)
        assert probe == candidate[:1]         # one token, to see if the text copies again
        slot.record(1, 0)                     # it does not
    assert rests == [REST_STEPS, 2 * REST_STEPS, 4 * REST_STEPS, 8 * REST_STEPS, MAX_REST_STEPS,
                     MAX_REST_STEPS]
    _rest(control)
    full = StepCosts.of(COMPUTE_BOUND.items())
    assert slot.choose(candidate, 4, 4.0, full) == []  # no probe in a step already full...
    assert slot.choose(candidate, 1, 1.0, costs) == candidate[:1]  # ...it waits for a light one
    slot.record(1, 1)                         # the text copies again: drafting resumes at once
    assert control.allowed() == 15 and control.cap == FIRST_DRAFT and control.q == pytest.approx(0.95)


def test_draft_length_doubles_while_drafts_are_accepted_whole():
    slot = _prose_slot()
    costs, candidate = StepCosts.of(AVX512_CPU.items()), list(range(15))
    lengths = []
    for _ in range(5):
        chosen = slot.choose(candidate, 1, 1.0, costs)
        lengths.append(len(chosen))
        slot.record(len(chosen), len(chosen))
    assert lengths[0] == FIRST_DRAFT and lengths[-1] == 15 and lengths == sorted(lengths)
    chosen = slot.choose(candidate, 1, 1.0, costs)
    slot.record(len(chosen), 5)               # rejected after 5: at most 6 next
    assert len(slot.choose(candidate, 1, 1.0, costs)) <= 6


def test_spec_config_is_checked():
    with pytest.raises(SettingsError):
        EngineConfig(model_path="x.gguf", spec=SpecConfig(ngram_min=4, ngram_max=2)).validate()
    with pytest.raises(SettingsError):
        EngineConfig(model_path="x.gguf", spec=SpecConfig(max_draft=0)).validate()
    with pytest.raises(SettingsError):
        EngineConfig(model_path="x.gguf", spec=SpecConfig(step_costs=((0, 1.0),))).validate()


# -- the real engine -------------------------------------------------------------------------------
# The mechanics (verify, KV, stop strings, budgets, cancel) are tested with GPU-like step costs
# given, so drafts pay and are fed whatever this host's CPU measures; one test lets the engine
# measure its own.

@pytest.fixture(scope="module")
def engine(demo_model):
    spec = SpecConfig(enabled=True, step_costs=tuple(GPU_LIKE.items()))
    with Engine(EngineConfig(model_path=demo_model, n_slots=2, ctx_per_slot=CTX, flash_attn=False,
                             spec=spec)) as eng:
        yield eng


def test_an_engine_measures_its_step_costs_and_still_decodes_plainly(demo_model, plain_logits):
    with Engine(EngineConfig(model_path=demo_model, n_slots=1, ctx_per_slot=CTX, flash_attn=False,
                             spec=SpecConfig(enabled=True))) as eng:
        on = eng.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=48))
        costs = eng._scheduler.step_costs  # the table the first speculating step measured
        assert costs.calibrated and costs.cost(1) > 0 and costs.cost(16) > costs.cost(1)
        off = eng.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=48,
                                             speculative=False))
        assert_same_or_near_tie(eng, plain_logits, COPY_PROMPT, on.text, off.text)


@pytest.fixture(scope="module")
def plain_logits(demo_model):
    runner = LogitsRunner(demo_model, n_ctx=CTX)
    yield runner
    runner.close()


def tokens_of(engine, request: GenerationRequest) -> tuple[list[int], object]:
    result = engine.generate(request)
    return engine.tokenize(result.text, add_special=False), result


def assert_same_or_near_tie(engine, plain_logits, prompt: str, on: str, off: str):
    """Greedy output with speculation equals the plain one, except where the plain logits
    themselves hold a near tie at the first token that differs."""
    if on == off:
        return
    a = engine.tokenize(on, add_special=False)
    b = engine.tokenize(off, add_special=False)
    first = next(i for i in range(min(len(a), len(b))) if a[i] != b[i])
    context = engine.tokenize(prompt, add_special=False) + b[:first]
    row = plain_logits.logits(context)[-1]
    top2 = np.sort(row)[-2:]
    assert top2[1] - top2[0] < TIE_GAP, (
        f"speculation changed greedy token {first} without a near tie: {on!r} vs {off!r}")


@pytest.mark.parametrize("prompt", [COPY_PROMPT, PROSE_PROMPT, "1, 2, 3, 4, 5,"])
def test_greedy_output_is_the_plain_output(engine, plain_logits, prompt):
    on = engine.generate(GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=96))
    off = engine.generate(GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=96,
                                            speculative=False))
    assert off.stats.draft_tokens == 0
    assert_same_or_near_tie(engine, plain_logits, prompt, on.text, off.text)


def test_a_copy_task_drafts_and_accepts(engine):
    result = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=96))
    stats = result.stats
    # Long drafts are tried where they pay, so some fail whole: count what was accepted, not the rate.
    assert stats.draft_tokens > 20 and stats.accepted_tokens >= 10
    assert 0 < stats.acceptance <= 1
    assert "perimeter" in result.text


def test_seeded_sampling_under_speculation_is_repeatable_and_accepts(engine):
    sampled = SamplingParams(temperature=0.6, top_p=0.95, seed=7)
    first = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=sampled, max_tokens=64))
    second = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=sampled, max_tokens=64))
    assert first.text == second.text
    assert first.stats.accepted_tokens > 0


def test_a_stop_string_ends_the_answer_under_speculation(engine, plain_logits):
    stop = ["perimeter"]
    on = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=96, stop=stop))
    off = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=96, stop=stop,
                                            speculative=False))
    assert on.finish_reason is FinishReason.STOP and "perimeter" not in on.text
    assert_same_or_near_tie(engine, plain_logits, COPY_PROMPT, on.text, off.text)


def test_max_tokens_is_exact_under_speculation(engine):
    result = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=37))
    assert result.finish_reason is FinishReason.LENGTH
    assert result.stats.completion_tokens == 37


THINKING_COPY = COPY_PROMPT + "<think>\n"


def test_the_thinking_budget_holds_under_speculation(engine):
    no_eog = SamplingParams(temperature=0.0, logit_bias={
        t: -100.0 for t in engine.tokenize("<|im_end|><|endoftext|>", add_special=False)})
    result = engine.generate(GenerationRequest(
        prompt=THINKING_COPY, sampling=no_eog, max_tokens=80,
        reasoning=ReasoningOptions(thinking_budget=30, loop_guard=False)))
    assert result.stats.reasoning_tokens == 30 + 3 or result.stats.reasoning_tokens >= 30
    assert result.reasoning_end is not None and result.answer.strip()
    assert result.stats.draft_tokens > 0


def _slot_kv_matches(engine) -> None:
    """Every idle slot's cached tokens are exactly what its KV sequence holds."""
    scheduler = engine._scheduler
    for _ in range(100):
        if scheduler.idle():
            break
        time.sleep(0.02)
    for slot in scheduler.slots:
        assert engine._ctx.seq_pos_max(slot.seq) + 1 == len(slot.cached), slot.seq


def test_rejected_drafts_leave_no_kv_behind(engine):
    for prompt in (COPY_PROMPT, PROSE_PROMPT):
        result = engine.generate(GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=64))
        assert result.stats.draft_tokens > result.stats.accepted_tokens or prompt is COPY_PROMPT
        _slot_kv_matches(engine)


def test_cancel_mid_draft_frees_the_slot(engine):
    handle = engine.submit(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=400))
    seen = 0
    for event in handle:
        if isinstance(event, TextDelta):
            seen += 1
            if seen == 12:
                handle.cancel()
    result = handle.result()
    assert result.finish_reason is FinishReason.CANCELLED
    _slot_kv_matches(engine)
    assert all(slot.job is None for slot in engine._scheduler.slots)
    assert engine.generate(GenerationRequest(prompt="Hi", sampling=GREEDY, max_tokens=4)).text


def test_two_streams_share_the_draft_room_and_match_plain(engine, plain_logits):
    handles = [engine.submit(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=64))
               for _ in range(2)]
    results = [h.result() for h in handles]
    off = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=64,
                                            speculative=False))
    for result in results:
        assert_same_or_near_tie(engine, plain_logits, COPY_PROMPT, result.text, off.text)
    _slot_kv_matches(engine)


def test_a_grammar_request_does_not_speculate(engine):
    request = GenerationRequest(prompt=COPY_PROMPT, max_tokens=16,
                                sampling=SamplingParams(temperature=0.0, grammar='root ::= "def " [a-z]+'))
    result = engine.generate(request)
    assert result.stats.draft_tokens == 0 and result.text.startswith("def ")
