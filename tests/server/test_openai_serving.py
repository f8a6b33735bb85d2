"""The OpenAI serving objects without a server: a body becomes a request, a result becomes
response objects (and errors.py's validation messages)."""

from __future__ import annotations

import pytest

from vibe_edge.errors import InvalidRequest
from vibe_edge.server import ModelHost, ServerConfig
from vibe_edge.server.errors import validation_message
from vibe_edge.server.metrics import Metrics
from vibe_edge.server.openai import OpenAIServingChat, OpenAIServingCompletion
from vibe_edge.server.openai.completions import CompletionChunks
from vibe_edge.server.openai.protocol import ChatCompletionRequest, CompletionRequest, openai_finish_reason
from vibe_edge.types import FinishReason, GenerationResult, RequestStats

CONFIG = ServerConfig()
HOST = ModelHost()
METRICS = Metrics(HOST.status, lambda: HOST.ready)
SERVING_CHAT = OpenAIServingChat(HOST, CONFIG, METRICS)
SERVING_COMPLETION = OpenAIServingCompletion(HOST, CONFIG, METRICS)
HI = [{"role": "user", "content": "hi"}]


def prepare_completion(body: CompletionRequest, ctx_per_slot: int = 4096):
    return SERVING_COMPLETION.prepare(body, ctx_per_slot=ctx_per_slot)


def chat(**fields):
    return SERVING_CHAT.prepare(ChatCompletionRequest(messages=HI, **fields), ctx_per_slot=4096)


def test_stop_string_or_list():
    assert tuple(chat(stop="END").request.stop) == ("END",)
    assert tuple(chat(stop=["a", "", "b"]).request.stop) == ("a", "b")
    assert tuple(chat().request.stop) == ()


def test_seed_and_logit_bias_normalised():
    prepared = chat(seed=-1, logit_bias={" 12 ": 3.5})
    assert prepared.request.sampling.seed == 2**32 - 1
    assert dict(prepared.request.sampling.logit_bias) == {12: 3.5}
    for bad in ({"-1": 1}, {"1.5": 1}, {"x": 1}, {"1": 101}):
        with pytest.raises(InvalidRequest) as info:
            chat(logit_bias=bad)
        assert info.value.param == "logit_bias"


def test_content_parts_and_assistant_without_content():
    body = ChatCompletionRequest(messages=[
        {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": "hi"}, {"role": "assistant"}, {"role": "user", "content": "again"}])
    messages = SERVING_CHAT.prepare(body, ctx_per_slot=4096).request.messages
    assert messages[0] == {"role": "developer", "content": [{"type": "text", "text": "be brief"}]}
    assert messages[2] == {"role": "assistant", "content": None}


def test_completion_prompt_forms():
    one = prepare_completion(CompletionRequest(prompt=["abc"], echo=True))
    assert one.request.prompt == "abc" and one.echo_prompt == "abc"
    with pytest.raises(InvalidRequest):
        prepare_completion(CompletionRequest(prompt=["a", "b"]))


def test_stream_flags():
    prepared = chat(stream=True, stream_options={"include_usage": True})
    assert prepared.stream and prepared.include_usage
    assert not chat().stream


@pytest.mark.parametrize("reason", list(FinishReason))
def test_finish_reason_is_always_an_openai_value(reason):
    assert openai_finish_reason(reason) in ("stop", "length")


def test_response_objects():
    stats = RequestStats(prompt_tokens=5, cached_tokens=2, reasoning_tokens=3, answer_tokens=4)
    result = GenerationResult("chatcmpl-1", "thinkanswer", "think", "answer", FinishReason.LENGTH, stats)
    prepared = chat()
    body = SERVING_CHAT.response(result, prepared, [], model="m").model_dump()
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
                             "prompt_tokens_details": {"cached_tokens": 2},
                             "completion_tokens_details": {"reasoning_tokens": 3}}
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "answer", "reasoning_content": "think"}
    assert body["choices"][0]["finish_reason"] == "length" and body["choices"][0]["finish_detail"] == "length"
    assert "boxed" not in body["choices"][0] and "error" not in body["choices"][0]
    assert body["system_fingerprint"] is None and body["choices"][0]["logprobs"] is None
    maker = CompletionChunks("cmpl-1", "m")
    assert maker.text("reasoning", "t").model_dump()["choices"][0] == {
        "index": 0, "text": "", "logprobs": None, "finish_reason": None, "reasoning_content": "t"}
    assert maker.usage(result).model_dump()["choices"] == []
    assert "timings" not in maker.text("answer", "x").model_dump()


def test_validation_messages():
    assert validation_message([]) == ("the request is not valid", None)
    message, param = validation_message([{"type": "json_invalid", "loc": ("body", 3), "msg": "x",
                                          "ctx": {"error": "Expecting value"}}])
    assert param is None and "not valid JSON" in message
    message, param = validation_message([{"type": "greater_than_equal", "loc": ("body", "max_tokens"),
                                          "msg": "Input should be greater than or equal to 1"}])
    assert param == "max_tokens" and message.startswith("max_tokens: ")
