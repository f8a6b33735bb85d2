"""`n` choices and the vote through the official openai SDK, against the real server on the
demo model: whole and streamed, chat and text completions, and a disconnect that ends every
sample."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from .conftest import MODEL_ID, wait_idle

QUESTION = [{"role": "user", "content": "What is 2+2? Answer with the number only."}]
# Greedy samples are compared token for token: without speculation, whose drafts put a slot in
# a larger batch (llama.cpp's CPU kernels are not batch-invariant at near ties).
PLAIN = {"speculative": False}


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_greedy_n_choices_are_identical_and_usage_counts_the_prompt_once(server):
    client = _client(server)
    one = client.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0, max_tokens=10,
                                         extra_body=PLAIN)
    reply = client.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0,
                                           max_tokens=10, n=3, extra_body=PLAIN)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert {c.message.content for c in reply.choices} == {one.choices[0].message.content}
    assert reply.usage.prompt_tokens == one.usage.prompt_tokens
    assert reply.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert "vote" not in reply.model_extra


def test_seeded_choices_differ(server):
    reply = _client(server).completions.create(
        model=MODEL_ID, prompt="Once upon a time", max_tokens=16, n=3, seed=7, temperature=1.0,
        extra_body={"top_k": 0, "min_p": 0})
    texts = [c.text for c in reply.choices]
    assert [c.index for c in reply.choices] == [0, 1, 2] and len(set(texts)) == 3, texts


def test_vote_puts_the_winner_first_and_says_who_agreed(server):
    reply = _client(server).chat.completions.create(
        model=MODEL_ID, messages=QUESTION, temperature=0, max_tokens=10, n=3,
        extra_body={"vote": True, **PLAIN})
    vote = reply.model_extra["vote"]
    assert vote["winner_index"] == 0
    assert vote["answers"][0]["votes"] == 3 and vote["answers"][0]["choices"] == [0, 1, 2]
    assert vote["choice_answers"] == [vote["winner"]] * 3
    assert vote["early_stopped"] == [] and vote["abstained"] == []


def test_streamed_chunks_carry_each_choice_index_and_the_vote_comes_last(server):
    stream = _client(server).chat.completions.create(
        model=MODEL_ID, messages=QUESTION, temperature=0, max_tokens=10, n=2, stream=True,
        stream_options={"include_usage": True}, extra_body={"vote": True, **PLAIN})
    text = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    votes, usage = [], None
    for chunk in stream:
        for choice in chunk.choices:
            text[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
        if (chunk.model_extra or {}).get("vote"):
            votes.append(chunk.model_extra["vote"])
        if chunk.usage is not None:
            usage = chunk.usage
    assert text[0] == text[1] and text[0]
    assert set(finishes) == {0, 1}
    assert len(votes) == 1 and votes[0]["answers"][0]["choices"] == [0, 1]
    assert usage is not None and usage.completion_tokens > 0


def test_streamed_text_completion_choices(server):
    stream = _client(server).completions.create(
        model=MODEL_ID, prompt="1, 2, 3,", max_tokens=8, n=2, temperature=0, stream=True)
    text = {0: "", 1: ""}
    for chunk in stream:
        for choice in chunk.choices:
            text[choice.index] += choice.text
    assert text[0] == text[1] and text[0]


def test_more_choices_than_slots_is_a_400(server):
    with pytest.raises(openai.BadRequestError) as info:
        _client(server).chat.completions.create(model=MODEL_ID, messages=QUESTION, n=5)
    assert info.value.body["param"] == "n"


def test_a_disconnect_cancels_every_sample(server, engine):
    wait_idle(engine)
    body = {"model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 800, "n": 3,
            "stream": True, "logit_bias": {str(t): -100 for t in engine.eog_tokens()[:50]}}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        with http.stream("POST", "/v1/completions", json=body) as reply:
            for line in reply.iter_lines():
                if '"text":"' in line.replace(" ", ""):
                    break
            assert engine.status().busy_slots == 3
    deadline = time.monotonic() + 10
    while engine.status().busy_slots and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.status().busy_slots == 0
