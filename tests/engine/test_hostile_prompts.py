"""Requests that used to stall or starve everyone: thousands of messages (tokenizing was
quadratic in special tokens, under a lock every submit needed), prompts that cannot fit,
bursts at the documented capacity, and a grammar request beside an ordinary stream."""

from __future__ import annotations

import threading
import time

import pytest

from vibe_edge.text.template import render_chat
from vibe_edge.engine import Engine, EngineConfig, GenerationRequest, SamplingParams
from vibe_edge.engine._llama import SPECIAL_TOKENS_PER_PIECE
from vibe_edge.engine.grammar import GRAMMAR_LIMITS, json_schema_grammar
from vibe_edge.errors import ContextLengthExceeded, EngineBusy

GREEDY = SamplingParams(temperature=0.0)
CTX = 1024


@pytest.fixture(scope="module")
def engine(demo_model):
    with Engine(EngineConfig(model_path=demo_model, n_slots=4, ctx_per_slot=CTX, queue_size=16,
                             threads=1)) as eng:
        yield eng


def _chat(n: int, text: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i in range(n)]


def test_tokenizing_in_pieces_gives_the_same_tokens(engine):
    model = engine._model
    messages = _chat(1500, "x <|im_start|> y <|im_end|>\n  z")
    text = render_chat(messages, template=engine.info.chat_template)
    assert len(model._split_at_specials(text)) > 10
    whole = model._tokenize(text, add_special=False, parse_special=True)  # llama.cpp in one call
    assert model.tokenize(text, add_special=False) == whole
    assert model.tokenize(text, add_special=True) == model._tokenize(text, add_special=True, parse_special=True)


def test_tokenizing_is_linear_in_special_tokens(engine):
    """4x the messages, about 4x the time (llama.cpp's quadratic walk made it 16x)."""
    model = engine._model
    texts = [render_chat(_chat(n), template=engine.info.chat_template) for n in (4000, 16000)]
    model.tokenize(texts[0], add_special=False)  # warm: the special-token scan is built once

    def seconds(text: str) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            model.tokenize(text, add_special=False)
            best = min(best, time.perf_counter() - t0)
        return best

    small, large = seconds(texts[0]), seconds(texts[1])
    assert large < small * 8, f"4x the messages took {large / small:.1f}x the time"
    assert SPECIAL_TOKENS_PER_PIECE >= 16


def test_too_many_messages_are_refused_before_any_work(engine):
    assert engine.max_messages == CTX // 2
    t0 = time.perf_counter()
    with pytest.raises(ContextLengthExceeded) as exc:
        engine.submit(GenerationRequest(messages=_chat(100_000), sampling=GREEDY, max_tokens=4))
    assert time.perf_counter() - t0 < 1.0  # not rendered, not tokenized
    assert exc.value.param == "messages" and "100,000 messages" in exc.value.message


def test_a_prompt_too_long_to_fit_is_refused_before_tokenizing(engine):
    limit = engine.max_prompt_chars
    assert CTX * 10 < limit < CTX * 1000  # the demo vocabulary's longest token is 162 bytes
    with pytest.raises(ContextLengthExceeded) as exc:
        engine.submit(GenerationRequest(prompt="a" * (limit + 1), sampling=GREEDY, max_tokens=4))
    assert exc.value.param == "prompt"
    with pytest.raises(ContextLengthExceeded) as exc:
        engine.submit(GenerationRequest(messages=[{"role": "user", "content": "a" * (limit + 1)}],
                                        sampling=GREEDY, max_tokens=4))
    assert exc.value.param == "messages"


def test_a_slow_submit_does_not_hold_up_others(engine):
    """A submit still tokenizing (the largest prompt that passes the limits) runs beside others."""
    big = GenerationRequest(messages=_chat(engine.max_messages, "word " * 30), sampling=GREEDY, max_tokens=4)
    done = threading.Event()
    errors: list[BaseException] = []

    def hostile() -> None:
        while not done.is_set():
            try:
                engine.submit(big).result(60)
            except ContextLengthExceeded:
                pass
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    def ordinary() -> float:
        t0 = time.perf_counter()
        engine.generate(GenerationRequest(prompt="The capital of France is", sampling=GREEDY, max_tokens=4), 60)
        return time.perf_counter() - t0

    baseline = min(ordinary() for _ in range(3))
    thread = threading.Thread(target=hostile)
    thread.start()
    try:
        time.sleep(0.2)
        loaded = max(ordinary() for _ in range(3))
    finally:
        done.set()
        thread.join(60)
    assert not errors, errors
    assert loaded < baseline * 5 + 1.0, f"{loaded:.2f} s beside the hostile request, {baseline:.2f} s alone"


def test_a_burst_at_capacity_is_admitted(engine):
    """4 slots + a queue of 16: 20 submits in a burst all get in, the 21st is refused."""
    long = GenerationRequest(prompt="Count to one thousand: 1, 2, 3,", sampling=GREEDY, max_tokens=400)
    handles = []
    try:
        for _ in range(20):
            handles.append(engine.submit(long))
        with pytest.raises(EngineBusy):
            handles.append(engine.submit(long))
    finally:
        for handle in handles:
            handle.cancel()
        for handle in handles:
            handle.result(30)


def test_a_grammar_request_does_not_slow_its_neighbour(engine):
    """A neighbour stream's decode rate beside a structured-output request at the enum limit
    (values that stay alive for many tokens, so llama.cpp's full-vocabulary grammar check runs
    on every one), against the same neighbour beside a plain request."""
    values = ["x" * 40 + f"-{i}" for i in range(GRAMMAR_LIMITS.max_alternatives)]
    grammar = json_schema_grammar({"enum": values})

    def neighbour_tps(beside: SamplingParams) -> float:
        stop = threading.Event()

        def other() -> None:
            while not stop.is_set():
                engine.generate(GenerationRequest(prompt="Pick one:", sampling=beside, max_tokens=30), 120)

        thread = threading.Thread(target=other)
        thread.start()
        try:
            time.sleep(0.5)
            result = engine.generate(GenerationRequest(prompt="Count: 1, 2, 3,", sampling=GREEDY,
                                                       max_tokens=60), 120)
        finally:
            stop.set()
            thread.join(120)
        return result.stats.decode_tps

    plain = neighbour_tps(SamplingParams(temperature=1.0, seed=1))
    constrained = neighbour_tps(SamplingParams(temperature=1.0, seed=1, grammar=grammar))
    # Before: about 4x slower (llama.cpp checked the whole vocabulary on this thread each token).
    assert constrained > plain / 2, f"{constrained:.1f} tok/s beside the grammar, {plain:.1f} beside plain"
