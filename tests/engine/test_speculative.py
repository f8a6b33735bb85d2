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
from vibe_edge.engine.speculate import MAX_REST_STEPS, PATIENCE, REST_STEPS, DraftControl, NgramIndex
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


def test_draft_control_shortens_rests_and_probes():
    control = DraftControl(max_draft=3)
    assert control.allowed() == 3
    for _ in range(PATIENCE + 1):
        if control.allowed() == 0:
            break
        control.record(3, 0)
    rested = [control.allowed() for _ in range(REST_STEPS)]
    assert rested == [0] * REST_STEPS
    assert control.allowed() == 1       # the probe after the rest
    control.record(1, 1)
    assert control.allowed() >= 1 and control.acceptance >= 0.5


def _rest(control: DraftControl) -> int:
    """Steps the control rests before its next probe (it must probe after them)."""
    steps = 0
    while control.allowed() == 0:
        steps += 1
    return steps


def test_failed_probes_double_the_rest_and_a_good_one_ends_it():
    control = DraftControl(max_draft=3)
    allowed = control.allowed()
    while allowed:                    # drafts fail until the control rests
        control.record(allowed, 0)
        allowed = control.allowed()
    rests = [1 + _rest(control)]      # the call that said 0 was the rest's first step
    for _ in range(6):
        control.record(1, 0)          # the probe fails: nothing to copy yet
        rests.append(_rest(control))
    assert rests == [REST_STEPS, 2 * REST_STEPS, 4 * REST_STEPS, 8 * REST_STEPS, MAX_REST_STEPS,
                     MAX_REST_STEPS, MAX_REST_STEPS]
    control.record(1, 1)              # the text copies again
    allowed = control.allowed()
    assert allowed >= 1               # drafting at once, no rest
    while allowed:
        control.record(allowed, 0)
        allowed = control.allowed()
    assert 1 + _rest(control) == REST_STEPS  # the next rest starts short again


def test_spec_config_is_checked():
    with pytest.raises(SettingsError):
        EngineConfig(model_path="x.gguf", spec=SpecConfig(ngram_min=4, ngram_max=2)).validate()
    with pytest.raises(SettingsError):
        EngineConfig(model_path="x.gguf", spec=SpecConfig(max_draft=0)).validate()


# -- the real engine -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine(demo_model):
    with Engine(EngineConfig(model_path=demo_model, n_slots=2, ctx_per_slot=CTX, flash_attn=False,
                             spec=SpecConfig(enabled=True))) as eng:
        yield eng


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
    assert stats.draft_tokens > 20 and stats.accepted_tokens > stats.draft_tokens // 3
    assert 0 < stats.acceptance <= 1
    assert "perimeter" in result.text


def test_seeded_sampling_under_speculation_is_repeatable_and_accepts(engine):
    sampled = SamplingParams(temperature=0.6, top_p=0.95, seed=7)
    first = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=sampled, max_tokens=64))
    second = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=sampled, max_tokens=64))
    assert first.text == second.text
    assert first.stats.accepted_tokens > 0


def test_a_stop_string_ends_the_answer_under_speculation(engine):
    stop = ["perimeter"]
    on = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=96, stop=stop))
    off = engine.generate(GenerationRequest(prompt=COPY_PROMPT, sampling=GREEDY, max_tokens=96, stop=stop,
                                            speculative=False))
    assert on.finish_reason is FinishReason.STOP and "perimeter" not in on.text
    assert on.text == off.text


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
