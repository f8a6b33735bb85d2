"""Many clients at once: continuous batching through the server, disconnects, the queue limit."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import openai
import pytest

from vibe_edge.engine import Engine, EngineConfig, GenerationRequest, SamplingParams
from vibe_edge.server import BackgroundServer, ServerConfig

from .conftest import MODEL_ID, SLOTS, wait_idle

CLIENTS = 16
N = 8


def _messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Write the number {i * 7} in words."}]


async def test_16_streaming_clients_on_4_slots_get_their_own_outputs(server, engine):
    expected = [engine.generate(GenerationRequest(messages=_messages(i), sampling=SamplingParams(temperature=0),
                                                  max_tokens=N)).answer for i in range(CLIENTS)]
    assert len(set(expected)) > CLIENTS // 2  # the prompts really differ
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
    busy_seen = 0

    async def one(i: int) -> str:
        stream = await client.chat.completions.create(model=MODEL_ID, messages=_messages(i), temperature=0,
                                                      max_tokens=N, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def watch() -> None:
        nonlocal busy_seen
        while True:
            busy_seen = max(busy_seen, engine.status().busy_slots)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    outputs = await asyncio.gather(*(one(i) for i in range(CLIENTS)))
    watcher.cancel()
    await client.close()
    assert outputs == expected
    assert busy_seen >= 2  # requests really overlapped in the engine's slots
    wait_idle(engine)


def _open_stream(url: str, body: dict) -> socket.socket:
    """A raw HTTP/1.1 streaming request; returns the socket after the first SSE data line."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    payload = json.dumps(body).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    seen = b""
    while b"data:" not in seen:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the stream early"
        seen += chunk
    return sock


def test_disconnected_streaming_clients_free_their_slots(server, engine):
    wait_idle(engine)
    body = {"messages": [{"role": "user", "content": "Tell me a very long story."}], "temperature": 0,
            "max_tokens": 900, "stream": True}
    socks = [_open_stream(server.url, body) for _ in range(SLOTS)]
    deadline = time.monotonic() + 10
    while engine.status().busy_slots < SLOTS and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.status().busy_slots == SLOTS
    for s in socks:
        s.close()
    wait_idle(engine, timeout=5)  # far less than 900 tokens would take


def test_disconnected_non_streaming_client_frees_its_slot(server, engine):
    wait_idle(engine)
    body = {"messages": [{"role": "user", "content": "Tell me a very long story."}], "temperature": 0,
            "max_tokens": 900}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=1.0))
    wait_idle(engine, timeout=5)


@pytest.fixture(scope="module")
def tiny_server(demo_model):
    """One slot and a queue of one: the third concurrent request must get 429."""
    eng = Engine(EngineConfig(model_path=demo_model, n_slots=1, ctx_per_slot=512, queue_size=1))
    srv = BackgroundServer(ServerConfig(model_id=MODEL_ID, retry_after_s=3), engine=eng)
    srv.start()
    yield srv, eng
    srv.stop()
    eng.close()


def test_full_queue_answers_429_with_retry_after(tiny_server):
    srv, eng = tiny_server
    body = {"messages": [{"role": "user", "content": "Tell me a very long story."}], "temperature": 0,
            "max_tokens": 400, "stream": True}
    running = _open_stream(srv.url, body)
    queued = _open_stream(srv.url, body)  # the role chunk is sent at once, even while queued
    deadline = time.monotonic() + 10
    while eng.status().queued < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    reply = httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=30)
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "3"
    error = reply.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "engine_busy"
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL_ID, messages=body["messages"], max_tokens=4)
    running.close()
    queued.close()
    wait_idle(eng, timeout=5)
    metrics = httpx.get(srv.url + "/metrics").text
    assert 'vibe_edge_requests_total{endpoint="chat",outcome="busy"} 2.0' in metrics
