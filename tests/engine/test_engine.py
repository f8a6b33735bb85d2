"""The real engine on the real demo model: correctness under continuous batching."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from llama_cpp import Llama

from vibe_edge.engine import (
    Engine,
    EngineConfig,
    Finished,
    FinishReason,
    GenerationRequest,
    SamplingParams,
    Started,
    TextDelta,
)
from vibe_edge.errors import ContextLengthExceeded, EngineBusy, EngineClosed, InvalidRequest

GREEDY = SamplingParams(temperature=0.0)
CTX = 1024


@pytest.fixture(scope="module")
def engine(demo_model):
    # flash_attn off to match llama-cpp-python's Llama defaults bit for bit.
    with Engine(EngineConfig(model_path=demo_model, n_slots=4, ctx_per_slot=CTX, flash_attn=False)) as eng:
        yield eng


def greedy(prompt: str, n: int, **kw) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=n, **kw)


PROMPTS = [
    "The three primary colors are",
    "def fibonacci(n):",
    "Paris is the capital of",
    "1, 2, 3, 4,",
    "Once upon a time",
    "The square root of 144 is",
]


def test_greedy_output_equals_llama_cpp_python(engine, demo_model):
    llm = Llama(model_path=str(demo_model), n_ctx=CTX, n_threads=2, flash_attn=False, verbose=False)
    try:
        for prompt in PROMPTS[:3]:
            reference = llm.create_completion(prompt, max_tokens=24, temperature=0.0)
            ours = engine.generate(greedy(prompt, 24))
            assert ours.text == reference["choices"][0]["text"], prompt
    finally:
        llm.close()


def test_concurrent_requests_match_their_solo_results(engine):
    lengths = [5, 17, 30, 9, 24, 12]
    solo = [engine.generate(greedy(p, n)).text for p, n in zip(PROMPTS, lengths)]
    # Six requests on four slots: two wait in the queue, all decode in shared batches.
    handles = [engine.submit(greedy(p, n)) for p, n in zip(PROMPTS, lengths)]
    results = [h.result(timeout=120) for h in handles]
    assert [r.text for r in results] == solo
    for result, n in zip(results, lengths):
        assert result.stats.answer_tokens <= n


def test_concurrent_stops_apply_to_their_own_request(engine):
    base = engine.generate(greedy("1, 2, 3, 4,", 30)).text
    assert " 7," in base
    stopped = engine.submit(greedy("1, 2, 3, 4,", 30, stop=[" 7,"]))
    free = engine.submit(greedy("1, 2, 3, 4,", 30))
    assert stopped.result(60).text == base[: base.index(" 7,")]
    assert stopped.result().finish_reason is FinishReason.STOP
    assert free.result(60).text == base


def test_stop_string_across_token_boundaries_never_leaks(engine):
    base = engine.generate(greedy("1, 2, 3, 4,", 30)).text
    stop = base[base.index("6") : base.index("6") + 4]  # e.g. "6, 7": spans several tokens
    handle = engine.submit(greedy("1, 2, 3, 4,", 30, stop=[stop]))
    deltas = [e.text for e in handle if isinstance(e, TextDelta)]
    result = handle.result()
    assert "".join(deltas) == result.text == base[: base.index(stop)]
    assert stop not in "".join(deltas)


def test_event_order_and_stats(engine):
    handle = engine.submit(greedy("The three primary colors are", 12))
    events = list(handle)
    assert isinstance(events[0], Started)
    assert isinstance(events[-1], Finished)
    assert sum(isinstance(e, Finished) for e in events) == 1
    result = events[-1].result
    s = result.stats
    assert s.prompt_tokens > 0 and s.ttft_ms is not None and s.ttft_ms >= 0
    assert s.decode_tps and s.decode_tps > 0
    assert s.answer_tokens == 12 and result.finish_reason is FinishReason.LENGTH


def test_prefix_cache_reuses_a_shared_history(engine):
    history = "Here is a long shared history. " * 30
    first = engine.generate(greedy(history + "Question one:", 8))
    second = engine.generate(greedy(history + "Question two:", 8))
    assert first.stats.cached_tokens == 0 or first.stats.cached_tokens < second.stats.cached_tokens
    assert second.stats.cached_tokens >= len(engine.tokenize(history)) - 2
    # The cache changes nothing about the output.
    again = engine.generate(greedy(history + "Question two:", 8))
    assert again.text == second.text


def test_a_new_conversation_never_evicts_a_live_one_for_a_few_shared_tokens(engine):
    # Every chat shares its template's opening tokens. A new conversation that shares only
    # those must not overwrite the slot holding another conversation's history: behind a
    # balancer that routes each conversation to its instance, that history is the point.
    first = "Note: the lighthouse keeper counted the ships that passed each night. " * 8
    turn1 = engine.generate(greedy(first, 8))
    other = engine.generate(greedy("Note: a completely different story about a baker.", 8))
    assert other.stats.cached_tokens <= 4  # the shared opening at most
    turn2 = engine.generate(greedy(first + turn1.text + " And then?", 8))
    assert turn2.stats.cached_tokens >= turn1.stats.prompt_tokens


def test_cancel_frees_the_slot_and_its_cache(engine):
    handle = engine.submit(greedy("Once upon a time", 900))
    for event in handle:
        if isinstance(event, TextDelta):
            handle.cancel()
            break
    result = handle.result(timeout=10)
    assert result.finish_reason is FinishReason.CANCELLED
    deadline = time.monotonic() + 5
    while engine.status().busy_slots and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.status().busy_slots == 0
    # The slot serves the next request normally.
    assert engine.generate(greedy("Paris is the capital of", 4)).finish_reason is FinishReason.LENGTH


def test_cancel_while_queued(demo_model):
    with Engine(EngineConfig(model_path=demo_model, n_slots=1, ctx_per_slot=512, warmup=False)) as eng:
        running = eng.submit(greedy("Once upon a time", 400))
        queued = eng.submit(greedy("Once upon a time", 400))
        queued.cancel()
        assert queued.result(timeout=30).finish_reason is FinishReason.CANCELLED
        running.cancel()
        assert running.result(timeout=30).finish_reason is FinishReason.CANCELLED


def test_deadline_ends_a_request(engine):
    result = engine.generate(greedy("Once upon a time", 900, deadline_s=0.3))
    assert result.finish_reason is FinishReason.TIMEOUT


def test_full_queue_fails_at_once_with_busy(demo_model):
    with Engine(EngineConfig(model_path=demo_model, n_slots=1, ctx_per_slot=512, queue_size=1,
                             warmup=False)) as eng:
        first = eng.submit(greedy("Once upon a time", 300))
        for event in first:  # wait until it holds the slot, so the next one queues
            if isinstance(event, Started):
                break
        second = eng.submit(greedy("Once upon a time", 5))
        started = time.monotonic()
        with pytest.raises(EngineBusy) as info:
            eng.submit(greedy("Once upon a time", 5))
        assert time.monotonic() - started < 1.0
        assert info.value.status == 429 and "busy" in info.value.message
        first.cancel()
        assert second.result(timeout=30).finish_reason is FinishReason.LENGTH


def test_bad_requests_fail_at_submit_and_others_keep_running(engine):
    running = engine.submit(greedy("Once upon a time", 40))
    with pytest.raises(ContextLengthExceeded) as info:
        engine.submit(greedy("word " * (CTX + 10), 4))
    assert info.value.param == "prompt" and "--ctx" in info.value.hint
    for bad, param in [
        (SamplingParams(temperature=-1), "temperature"),
        (SamplingParams(top_p=1.5), "top_p"),
        (SamplingParams(top_k=-3), "top_k"),
        (SamplingParams(min_p=2.0), "min_p"),
        (SamplingParams(presence_penalty=3.0), "presence_penalty"),
        (SamplingParams(seed=-5), "seed"),
        (SamplingParams(logit_bias={10**7: 1.0}), "logit_bias"),
        (SamplingParams(grammar="root ::= ("), "response_format"),
    ]:
        with pytest.raises(InvalidRequest) as info:
            engine.submit(GenerationRequest(prompt="hi", sampling=bad, max_tokens=4))
        assert info.value.param == param
    with pytest.raises(InvalidRequest):
        engine.submit(GenerationRequest(prompt="hi", max_tokens=0))
    with pytest.raises(InvalidRequest):
        engine.submit(GenerationRequest(messages=[{"role": "wizard", "content": "x"}]))
    assert running.result(timeout=60).stats.answer_tokens == 40


def test_chat_messages_use_the_model_template_and_end_on_eog(engine):
    result = engine.generate(GenerationRequest(
        messages=[{"role": "user", "content": "Say hello."}], sampling=GREEDY, max_tokens=200))
    assert result.finish_reason is FinishReason.STOP  # <|im_end|> ended it, not the length
    assert "<|im_end|>" not in result.text and result.answer == result.text
    assert result.reasoning == "" and result.reasoning_end is None


def test_multibyte_characters_are_never_split(engine):
    # SmolLM2's byte-level vocabulary spells each kana over several byte tokens: every delta
    # must still be whole characters.
    handle = engine.submit(GenerationRequest(
        prompt="Japanese: こんにちは、こんにちは、こんにちは、", sampling=GREEDY, max_tokens=20))
    deltas = [e.text for e in handle if isinstance(e, TextDelta)]
    text = handle.result().text
    assert "".join(deltas) == text
    assert "\ufffd" not in "".join(deltas)
    assert sum(1 for ch in text if ord(ch) > 0x3000) >= 4


def test_grammar_constrains_the_output(engine):
    from vibe_edge.engine.grammar import json_schema_grammar

    grammar = json_schema_grammar({"type": "object", "properties": {"n": {"type": "integer"}},
                                   "required": ["n"]})
    result = engine.generate(GenerationRequest(
        prompt="A JSON object with a number:", sampling=SamplingParams(temperature=0, grammar=grammar),
        max_tokens=40))
    import json

    assert isinstance(json.loads(result.text)["n"], int)


async def test_async_iteration(engine):
    handle = engine.submit(greedy("Paris is the capital of", 6))
    events = [e async for e in handle]
    assert isinstance(events[-1], Finished)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == events[-1].result.text


def test_events_are_consumable_from_another_thread(engine):
    handle = engine.submit(greedy("Paris is the capital of", 6))
    seen = []
    worker = threading.Thread(target=lambda: seen.extend(handle))
    worker.start()
    worker.join(30)
    assert isinstance(seen[-1], Finished)


def test_close_finishes_every_request(demo_model):
    eng = Engine(EngineConfig(model_path=demo_model, n_slots=1, ctx_per_slot=512, warmup=False))
    handles = [eng.submit(greedy("Once upon a time", 400)) for _ in range(3)]
    eng.close()
    for handle in handles:
        assert handle.result(timeout=5).finish_reason is FinishReason.CANCELLED
    with pytest.raises(EngineClosed):
        eng.submit(greedy("hi", 2))


# A prompt whose template pre-filled <think>: SmolLM2 does not think by itself, so this is how
# the real engine gets a think block to manage. Its end-of-turn tokens are banned so that it
# keeps "thinking" (greedily it repeats "The answer is 4." forever, a real loop).
THINKING_PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"


@pytest.fixture(scope="module")
def no_eog(engine):
    return SamplingParams(temperature=0.0, logit_bias={
        t: -100.0 for t in engine.tokenize("<|im_end|><|endoftext|>", add_special=False)})


def _think_with_budget(engine, sampling, budget: int, max_tokens: int):
    """The pre-filled thinking prompt under a budget: (events, result)."""
    from vibe_edge.engine import ReasoningOptions

    handle = engine.submit(GenerationRequest(prompt=THINKING_PROMPT, sampling=sampling, max_tokens=max_tokens,
                                             reasoning=ReasoningOptions(thinking_budget=budget)))
    return list(handle), handle.result()


def test_thinking_budget_closes_the_block_and_the_model_still_answers(engine, no_eog):
    from vibe_edge.engine import Notice, ReasoningEnd

    events, result = _think_with_budget(engine, no_eog, budget=10, max_tokens=80)
    assert result.reasoning_end is ReasoningEnd.BUDGET
    assert [e.code for e in events if isinstance(e, Notice)] == ["thinking_budget"]
    assert result.stats.reasoning_tokens >= 10 and result.stats.answer_tokens > 0
    assert result.reasoning.strip() and result.answer.strip()
    assert "</think>" not in result.reasoning + result.answer
    channels = [e.channel for e in events if isinstance(e, TextDelta)]
    assert channels == sorted(channels, key=lambda c: c == "answer")  # reasoning, then answer


def test_a_zero_budget_closes_a_prefilled_think_block_before_the_model_starts(engine, no_eog):
    from vibe_edge.engine import Notice, ReasoningEnd

    events, result = _think_with_budget(engine, no_eog, budget=0, max_tokens=12)
    assert result.reasoning == "" and result.stats.reasoning_tokens == 0
    assert result.answer.strip() and result.stats.answer_tokens == 12
    assert result.reasoning_end is ReasoningEnd.BUDGET
    assert [e.code for e in events if isinstance(e, Notice)] == ["thinking_budget"]
    assert not any(isinstance(e, TextDelta) and e.channel == "reasoning" for e in events)


def test_loop_guard_closes_a_repeating_trace_and_the_model_still_answers(engine, no_eog):
    from vibe_edge.engine import Notice, ReasoningEnd

    handle = engine.submit(GenerationRequest(prompt=THINKING_PROMPT, sampling=no_eog, max_tokens=600))
    assert "loop_guard" in [e.code for e in handle if isinstance(e, Notice)]
    result = handle.result()
    assert result.reasoning_end is ReasoningEnd.LOOP
    assert result.stats.reasoning_tokens < 400  # caught long before the token limit
    assert result.stats.answer_tokens > 0


def test_a_request_near_its_limit_keeps_room_for_the_answer(engine, no_eog):
    from vibe_edge.engine import ReasoningEnd

    # No budget asked: a 40-token limit still ends the thinking early enough to answer.
    result = engine.generate(GenerationRequest(prompt=THINKING_PROMPT, sampling=no_eog, max_tokens=40))
    assert result.reasoning_end is ReasoningEnd.BUDGET
    # 30 = 40 less the quarter kept for the answer, plus the tokens that close the block.
    assert 30 <= result.stats.reasoning_tokens <= 40 and result.stats.answer_tokens > 0


def test_admission_gives_the_slot_under_the_lock_so_a_cache_reset_cannot_interleave(engine):
    """reset_idle_cache (another thread) takes the scheduler's lock and clears every slot when
    the engine looks idle. A job popped from the queue but not yet in its slot looks idle: the
    whole admission must hold the lock, or the reset could wipe the KV it is about to reuse."""
    sched = engine._scheduler
    seen: list[bool] = []
    original = sched._pick_slot

    def probing_pick(free, prompt):
        def try_lock() -> None:
            got = sched._cond.acquire(blocking=False)
            if got:
                sched._cond.release()
            seen.append(got)

        prober = threading.Thread(target=try_lock)
        prober.start()
        prober.join(5)
        return original(free, prompt)

    sched._pick_slot = probing_pick
    try:
        engine.generate(GenerationRequest(prompt="Hello there", max_tokens=2))
    finally:
        sched._pick_slot = original
    assert seen == [False]
