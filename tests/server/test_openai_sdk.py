"""The official openai SDK (sync and async, streaming and not) against the real server on the
demo model, over TCP and over a Unix socket. Greedy decoding makes outputs comparable with the
engine's own."""

from __future__ import annotations

import httpx2
import openai
import pytest

from vibe_edge.engine import GenerationRequest, SamplingParams
from vibe_edge.server import BackgroundServer, ServerConfig

from .conftest import MODEL_ID

N = 12
QUESTION = [{"role": "user", "content": "Name a fruit."}]


@pytest.fixture(scope="module")
def expected(engine):
    result = engine.generate(GenerationRequest(messages=QUESTION, sampling=SamplingParams(temperature=0),
                                               max_tokens=N))
    assert result.answer
    return result


@pytest.fixture(scope="module")
def uds_server(engine, tmp_path_factory):
    path = tmp_path_factory.mktemp("uds") / "vibe.sock"
    srv = BackgroundServer(ServerConfig(model_id=MODEL_ID), engine=engine, socket_path=path)
    srv.start()
    yield srv
    srv.stop()


def _sync_client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_sync_chat_non_streaming(server, expected):
    reply = _sync_client(server).chat.completions.create(
        model=MODEL_ID, messages=QUESTION, temperature=0, max_tokens=N)
    assert reply.object == "chat.completion"
    assert reply.model == MODEL_ID
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected.answer
    assert choice.finish_reason == expected.finish_reason.value
    usage = reply.usage
    assert usage.completion_tokens == expected.stats.completion_tokens
    assert usage.prompt_tokens == expected.stats.prompt_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens == 0
    # the same conversation was just generated: the prefix cache serves most of the prompt
    assert usage.prompt_tokens_details.cached_tokens > 0
    extra = reply.model_extra
    assert extra["timings"]["prompt_tokens"] == usage.prompt_tokens
    assert extra["timings"]["ttft_ms"] > 0


def test_sync_chat_streaming_with_usage(server, expected):
    stream = _sync_client(server).chat.completions.create(
        model=MODEL_ID, messages=QUESTION, temperature=0, max_tokens=N, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected.answer
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == expected.finish_reason.value
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == expected.stats.completion_tokens
    assert len({c.id for c in chunks}) == 1


async def test_async_chat_streaming_and_not(server, expected):
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    reply = await client.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0,
                                                 max_tokens=N)
    assert reply.choices[0].message.content == expected.answer
    stream = await client.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0,
                                                  max_tokens=N, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == expected.answer
    await client.close()


def test_completions_streaming_and_not(server, engine):
    prompt = "The capital of France is"
    ref = engine.generate(GenerationRequest(prompt=prompt, sampling=SamplingParams(temperature=0), max_tokens=8))
    client = _sync_client(server)
    reply = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=8)
    assert reply.object == "text_completion"
    assert reply.choices[0].text == ref.text
    assert reply.usage.completion_tokens == ref.stats.completion_tokens
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=8, stream=True) if c.choices)
    assert streamed == ref.text
    echoed = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=8, echo=True)
    assert echoed.choices[0].text == prompt + ref.text


def test_models_list(server, engine):
    models = _sync_client(server).models.list()
    ids = [m.id for m in models.data]
    assert ids == [MODEL_ID]
    assert models.data[0].model_extra["meta"]["ctx_per_slot"] == engine.info.ctx_per_slot
    assert _sync_client(server).models.retrieve(MODEL_ID).id == MODEL_ID
    with pytest.raises(openai.NotFoundError):
        _sync_client(server).models.retrieve("gpt-4")


def test_sdk_over_unix_socket_sync_and_async(uds_server, expected):
    path = str(uds_server.socket_path)
    client = openai.OpenAI(base_url="http://localhost/v1", api_key="unused", max_retries=0, timeout=60,
                           http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=path)))
    reply = client.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0, max_tokens=N)
    assert reply.choices[0].message.content == expected.answer
    stream = client.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0,
                                            max_tokens=N, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected.answer


async def test_async_sdk_over_unix_socket(uds_server, expected):
    path = str(uds_server.socket_path)
    client = openai.AsyncOpenAI(base_url="http://localhost/v1", api_key="unused", max_retries=0,
                                timeout=60,
                                http_client=httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(uds=path)))
    stream = await client.chat.completions.create(model=MODEL_ID, messages=QUESTION, temperature=0,
                                                  max_tokens=N, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == expected.answer
    await client.close()


def test_sampling_parameters_are_accepted(server):
    client = _sync_client(server)
    reply = client.chat.completions.create(
        model=MODEL_ID, messages=QUESTION, temperature=0.7, top_p=0.9, seed=42, max_completion_tokens=6,
        presence_penalty=0.5, frequency_penalty=0.5, logit_bias={"42": -100}, stop=["\n\n", "zzz"],
        extra_body={"top_k": 20, "min_p": 0.05, "repeat_penalty": 1.1, "preset": "general"})
    assert reply.usage.completion_tokens <= 6
    again = client.chat.completions.create(
        model=MODEL_ID, messages=QUESTION, temperature=0.7, top_p=0.9, seed=42, max_completion_tokens=6,
        presence_penalty=0.5, frequency_penalty=0.5, logit_bias={"42": -100}, stop=["\n\n", "zzz"],
        extra_body={"top_k": 20, "min_p": 0.05, "repeat_penalty": 1.1, "preset": "general"})
    assert again.choices[0].message.content == reply.choices[0].message.content  # same seed


def test_json_object_response_format(server):
    import json

    reply = _sync_client(server).chat.completions.create(
        model=MODEL_ID, temperature=0, max_tokens=60,
        messages=[{"role": "user", "content": "Describe a cat as JSON with a name and an age."}],
        response_format={"type": "json_schema", "json_schema": {"name": "cat", "schema": {
            "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"], "additionalProperties": False}}})
    data = json.loads(reply.choices[0].message.content)
    assert set(data) == {"name", "age"} and isinstance(data["age"], int)


def test_an_answer_starting_with_whitespace_does_not_wedge_the_engine(client, engine):
    # Regression: the demo model answers "1, 2, 3," with a whitespace token first; the reasoning
    # parser once looped forever on it, freezing every slot of the server.
    reply = client.post("/v1/completions", json={"prompt": "1, 2, 3,", "max_tokens": 6, "temperature": 0},
                        timeout=30)
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] >= 1


def test_speculative_extension_and_its_timings(server, expected):
    # A copy task drafts; the same request with speculation off gives the same answer (greedy)
    # and reports no drafts.
    ask = [{"role": "user", "content": "Repeat exactly: one two three four five six seven eight "
                                       "one two three four five six seven eight"}]
    client = _sync_client(server)
    on = client.chat.completions.create(model=MODEL_ID, messages=ask, temperature=0, max_tokens=32,
                                        extra_body={"speculative": True})
    off = client.chat.completions.create(model=MODEL_ID, messages=ask, temperature=0, max_tokens=32,
                                         extra_body={"speculative": False})
    timings_on, timings_off = on.model_extra["timings"], off.model_extra["timings"]
    assert timings_off["draft_tokens"] == 0 and timings_off.get("acceptance") is None
    assert timings_on["draft_tokens"] >= timings_on["accepted_tokens"] >= 0
    assert timings_on["draft_tokens"] > 0  # "one two ... eight" repeats: there is something to copy
