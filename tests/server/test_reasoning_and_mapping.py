"""Reasoning fields and finish mapping, on a scripted engine that thinks (the demo model does
not): reasoning_content on messages and deltas, reasoning token counts, boxed answers,
notices, timeouts, engine errors, keep-alive comments, and how request fields reach the engine."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from vibe_edge.presets import MATH_SYSTEM_PROMPT, MATH_USER_SUFFIX, get_preset
from vibe_edge.engine import FinishReason, ReasoningEnd
from vibe_edge.server import BackgroundServer, ServerConfig

from doubles import THINKING, Script, ScriptedEngine, answer, pause, reasoning

ASK = [{"role": "user", "content": "What is 2 + 2?"}]


def sse_events(text: str) -> tuple[list[dict], list[str]]:
    """(data objects, comment lines) of an SSE body; checks it ends with [DONE]."""
    data, comments = [], []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data: "):
                payload = line[len("data: "):]
                data.append(payload if payload == "[DONE]" else json.loads(payload))
    assert data and data[-1] == "[DONE]", text[-300:]
    return data[:-1], comments


def serve(script: Script, **config) -> tuple[BackgroundServer, ScriptedEngine]:
    engine = ScriptedEngine(script)
    srv = BackgroundServer(ServerConfig(model_id="thinker", **config), engine=engine)
    return srv.start(), engine


@pytest.fixture(scope="module")
def thinker():
    srv, engine = serve(THINKING)
    yield srv, engine
    srv.stop()


def test_reasoning_content_on_the_message(thinker):
    srv, _ = thinker
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(model="thinker", messages=ASK)
    message = reply.choices[0].message
    assert message.content == "The answer is \\boxed{4}"
    assert message.model_extra["reasoning_content"] == "Let me add. 2 + 2 = 4."
    assert reply.usage.completion_tokens_details.reasoning_tokens == 2
    assert reply.usage.completion_tokens == 4
    assert reply.usage.prompt_tokens_details.cached_tokens == 4
    choice = reply.choices[0].model_extra
    assert choice["boxed"] == "4"
    assert choice["reasoning_end"] == "budget"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model_extra["notices"] == [{"code": "thinking_budget", "message": "the thinking budget ran out"}]
    assert reply.model_extra["timings"]["reasoning_tokens"] == 2


def test_reasoning_content_on_deltas(thinker):
    srv, _ = thinker
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    chunks = list(client.chat.completions.create(model="thinker", messages=ASK, stream=True,
                                                 stream_options={"include_usage": True}))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reasoning == "Let me add. 2 + 2 = 4." and answer == "The answer is \\boxed{4}"
    notices = [c.model_extra["notice"] for c in chunks if "notice" in (c.model_extra or {})]
    assert notices == [{"code": "thinking_budget", "message": "the thinking budget ran out"}]
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert final.choices[0].model_extra["boxed"] == "4"
    assert final.model_extra["timings"]["answer_tokens"] == 2
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 2
    # reasoning never leaks into content, content never into reasoning
    for c in chunks:
        if c.choices:
            delta = c.choices[0].delta
            assert not (delta.content and (delta.model_extra or {}).get("reasoning_content"))


def test_completions_carry_reasoning_apart(thinker):
    srv, _ = thinker
    reply = httpx.post(srv.url + "/v1/completions", json={"prompt": "2+2="}).json()
    assert reply["choices"][0]["text"] == "The answer is \\boxed{4}"
    assert reply["choices"][0]["reasoning_content"] == "Let me add. 2 + 2 = 4."
    with httpx.stream("POST", srv.url + "/v1/completions", json={"prompt": "2+2=", "stream": True}) as r:
        data, _ = sse_events(r.read().decode())
    assert "".join(d["choices"][0]["text"] for d in data if d["choices"]) == "The answer is \\boxed{4}"


def test_request_fields_reach_the_engine(thinker):
    srv, engine = thinker
    body = {"messages": ASK, "max_tokens": 2000, "temperature": 0.3, "top_p": 0.9, "seed": -1,
            "stop": "END", "preset": "math", "thinking_budget": 500, "loop_guard": False,
            "top_k": 7, "min_p": 0.1, "repeat_penalty": 1.2, "deadline_s": 30,
            "logit_bias": {"151665": -100}, "user": "ignored", "metadata": {"a": "b"}}
    assert httpx.post(srv.url + "/v1/chat/completions", json=body).status_code == 200
    req = engine.requests[-1]
    s = req.sampling
    assert (s.temperature, s.top_p, s.top_k, s.min_p, s.repeat_penalty) == (0.3, 0.9, 7, 0.1, 1.2)
    assert s.seed == 2**32 - 1 and dict(s.logit_bias) == {151665: -100.0}
    assert req.max_tokens == 2000 and tuple(req.stop) == ("END",) and req.deadline_s == 30
    assert req.reasoning.thinking_budget == 500 and req.reasoning.loop_guard is False
    # naming the math preset applies its prompts too
    assert req.messages[0] == {"role": "system", "content": MATH_SYSTEM_PROMPT}
    assert req.messages[-1]["content"].endswith(MATH_USER_SUFFIX)


def test_defaults_come_from_the_server_preset(thinker):
    srv, engine = thinker
    httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK})
    req = engine.requests[-1]
    math = get_preset("math")
    assert req.sampling.temperature == math.sampling.temperature
    assert req.sampling.top_k == 0 and req.sampling.min_p == 0.0
    assert req.messages == ASK  # the default preset lends sampling values, not prompts
    # the preset's thinking budget would not leave room to answer in a 4096-token slot: shrunk
    assert req.reasoning.thinking_budget == int(4096 * 0.75)
    httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK, "max_completion_tokens": 100,
                                                       "max_tokens": 50, "top_p": 0})
    req = engine.requests[-1]
    assert req.max_tokens == 100 and req.reasoning.thinking_budget == 75
    assert req.sampling.temperature == 0.0  # top_p 0 means greedy
    httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK, "thinking_budget": 0})
    assert engine.requests[-1].reasoning.thinking_budget == 0  # no thinking
    httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK, "thinking_budget": -1})
    assert engine.requests[-1].reasoning.thinking_budget is None  # no budget, not even the preset's


def test_server_wide_preset_prompts_and_budget():
    srv, engine = serve(THINKING, default_preset="code", apply_preset_prompts=True, thinking_budget=64,
                        loop_guard=False)
    try:
        httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK})
        req = engine.requests[-1]
        assert req.messages[0]["role"] == "system" and "Python" in req.messages[0]["content"]
        assert req.reasoning.thinking_budget == 64 and req.reasoning.loop_guard is False
        assert req.sampling.temperature == get_preset("code").sampling.temperature
    finally:
        srv.stop()


@pytest.mark.parametrize("reason, expected", [
    (FinishReason.STOP, "stop"), (FinishReason.LENGTH, "length"), (FinishReason.TIMEOUT, "length"),
    (FinishReason.CANCELLED, "length"), (FinishReason.ERROR, "length"),
])
def test_finish_reason_mapping_after_output(reason, expected):
    script = Script(steps=[answer("partial")], finish=reason,
                    error="llama_decode failed" if reason is FinishReason.ERROR else None)
    srv, _ = serve(script)
    try:
        reply = httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK})
        assert reply.status_code == 200
        choice = reply.json()["choices"][0]
        assert choice["finish_reason"] == expected
        assert choice["finish_detail"] == reason.value
        assert choice["message"]["content"] == "partial"
        assert ("error" in choice) == (reason is FinishReason.ERROR)
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json={"messages": ASK, "stream": True}) as r:
            data, _ = sse_events(r.read().decode())
        final = data[-1]["choices"][0]
        assert final["finish_reason"] == expected and final["finish_detail"] == reason.value
    finally:
        srv.stop()


def test_engine_error_before_output_is_an_http_error_or_an_sse_error_event():
    srv, _ = serve(Script(steps=[], finish=FinishReason.ERROR, error="llama_decode failed with status -1"))
    try:
        reply = httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK})
        assert reply.status_code == 500
        assert reply.json()["error"]["code"] == "engine_error"
        assert "llama_decode" in reply.json()["error"]["message"]
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIError, match="llama_decode"):
            list(client.chat.completions.create(model="thinker", messages=ASK, stream=True))
    finally:
        srv.stop()


def test_cancel_by_shutdown_before_output_is_503():
    srv, _ = serve(Script(steps=[], finish=FinishReason.CANCELLED))
    try:
        reply = httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK})
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "engine_unavailable"
    finally:
        srv.stop()


def test_timeout_without_output_is_an_empty_length_answer():
    srv, _ = serve(Script(steps=[], finish=FinishReason.TIMEOUT))
    try:
        choice = httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK}).json()["choices"][0]
        assert choice["finish_reason"] == "length" and choice["finish_detail"] == "timeout"
        assert choice["message"]["content"] == ""
    finally:
        srv.stop()


def test_keepalive_comments_during_a_silent_prefill():
    srv, _ = serve(Script(steps=[pause(0.5), answer("done")], start_delay_s=0.3), keepalive_s=0.1)
    try:
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json={"messages": ASK, "stream": True}) as r:
            data, comments = sse_events(r.read().decode())
        assert len(comments) >= 3 and all(c == ": keep-alive" for c in comments)
        assert "".join(d["choices"][0]["delta"].get("content") or "" for d in data if d["choices"]) == "done"
    finally:
        srv.stop()


def test_reasoning_end_model_and_loop():
    script = Script(steps=[reasoning("hmm"), answer("ok")], reasoning_end=ReasoningEnd.LOOP)
    srv, _ = serve(script)
    try:
        choice = httpx.post(srv.url + "/v1/chat/completions", json={"messages": ASK}).json()["choices"][0]
        assert choice["reasoning_end"] == "loop" and "boxed" not in choice
    finally:
        srv.stop()
