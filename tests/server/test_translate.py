"""The pure request/response mapping (no server): edge cases of translate.py and errors.py."""

from __future__ import annotations

import pytest

from vibe_edge.engine import FinishReason, GenerationResult, RequestStats
from vibe_edge.errors import InvalidRequest
from vibe_edge.server import ServerConfig
from vibe_edge.server.errors import validation_message
from vibe_edge.server.schemas import ChatCompletionRequest, CompletionRequest
from vibe_edge.server.translate import ChunkMaker, chat_completion, finish_reason, prepare_chat, prepare_completion

CONFIG = ServerConfig()
HI = [{"role": "user", "content": "hi"}]


def chat(**fields):
    return prepare_chat(ChatCompletionRequest(messages=HI, **fields), CONFIG, ctx_per_slot=4096)


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
    messages = prepare_chat(body, CONFIG, ctx_per_slot=4096).request.messages
    assert messages[0] == {"role": "developer", "content": [{"type": "text", "text": "be brief"}]}
    assert messages[2] == {"role": "assistant", "content": None}


def test_completion_prompt_forms():
    one = prepare_completion(CompletionRequest(prompt=["abc"], echo=True), CONFIG, ctx_per_slot=4096)
    assert one.request.prompt == "abc" and one.echo_prompt == "abc"
    with pytest.raises(InvalidRequest):
        prepare_completion(CompletionRequest(prompt=["a", "b"]), CONFIG, ctx_per_slot=4096)


def test_stream_flags():
    prepared = chat(stream=True, stream_options={"include_usage": True})
    assert prepared.stream and prepared.include_usage
    assert not chat().stream


@pytest.mark.parametrize("reason", list(FinishReason))
def test_finish_reason_is_always_an_openai_value(reason):
    assert finish_reason(reason) in ("stop", "length")


def test_response_objects():
    stats = RequestStats(prompt_tokens=5, cached_tokens=2, reasoning_tokens=3, answer_tokens=4)
    result = GenerationResult("chatcmpl-1", "thinkanswer", "think", "answer", FinishReason.LENGTH, stats)
    body = chat_completion(result, model="m", created=1, notices=[])
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
                             "prompt_tokens_details": {"cached_tokens": 2},
                             "completion_tokens_details": {"reasoning_tokens": 3}}
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "answer", "reasoning_content": "think"}
    maker = ChunkMaker("cmpl-1", "m", chat=False)
    assert maker.text("reasoning", "t")["choices"][0] == {"index": 0, "text": "", "logprobs": None,
                                                          "finish_reason": None, "reasoning_content": "t"}
    assert maker.usage(result)["choices"] == []


def test_validation_messages():
    assert validation_message([]) == ("the request is not valid", None)
    message, param = validation_message([{"type": "json_invalid", "loc": ("body", 3), "msg": "x",
                                          "ctx": {"error": "Expecting value"}}])
    assert param is None and "not valid JSON" in message
    message, param = validation_message([{"type": "greater_than_equal", "loc": ("body", "max_tokens"),
                                          "msg": "Input should be greater than or equal to 1"}])
    assert param == "max_tokens" and message.startswith("max_tokens: ")
