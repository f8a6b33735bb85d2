"""/metrics in Prometheus format, and graceful shutdown of in-flight streams."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from vibe_edge.server import BackgroundServer, ServerConfig

from .conftest import SLOTS, wait_idle
from doubles import Script, ScriptedEngine, answer, pause

ASK = {"messages": [{"role": "user", "content": "Say something."}], "max_tokens": 4, "temperature": 0}


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_count_requests_tokens_and_show_engine_state(client, engine):
    before = _samples(client.get("/metrics").text)
    reply = client.post("/v1/chat/completions", json=ASK).json()
    client.post("/v1/chat/completions", json={"messages": []})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    finish = reply["choices"][0]["finish_detail"]
    assert delta("vibe_edge_requests_total", endpoint="chat", outcome=finish) == 1
    assert delta("vibe_edge_requests_total", endpoint="chat", outcome="invalid") == 1
    assert delta("vibe_edge_prompt_tokens_total") == reply["usage"]["prompt_tokens"]
    assert delta("vibe_edge_generated_tokens_total") == reply["usage"]["completion_tokens"]
    assert delta("vibe_edge_time_to_first_token_seconds_count") == 1
    assert delta("vibe_edge_request_duration_seconds_count") == 1
    assert after[("vibe_edge_slots", ())] == SLOTS
    assert after[("vibe_edge_ready", ())] == 1
    for name in ("vibe_edge_busy_slots", "vibe_edge_queue_depth", "vibe_edge_kv_cache_used_tokens",
                 "vibe_edge_kv_cache_usage_ratio", "vibe_edge_http_requests_in_flight"):
        assert (name, ()) in after


def test_busy_slots_gauge_during_a_stream(server, engine):
    wait_idle(engine)
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({**ASK, "max_tokens": 600, "stream": True}).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    try:
        deadline = time.monotonic() + 10
        busy = 0.0
        while time.monotonic() < deadline and busy < 1:
            busy = _samples(httpx.get(server.url + "/metrics").text)[("vibe_edge_busy_slots", ())]
        assert busy >= 1
    finally:
        sock.close()
    wait_idle(engine, timeout=5)


def _stream_in_thread(url: str, out: list) -> threading.Thread:
    def run():
        with httpx.stream("POST", url + "/v1/chat/completions", timeout=30,
                          json={"messages": [{"role": "user", "content": "x"}], "stream": True}) as r:
            out.append(r.read().decode())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("grace, detail", [(0.2, "cancelled"), (5.0, "stop")])
def test_shutdown_lets_streams_finish_within_the_grace_period(grace, detail):
    engine = ScriptedEngine(Script(steps=[answer("a"), pause(1.0), answer("b")]))
    srv = BackgroundServer(ServerConfig(grace_s=grace), engine=engine, owns_engine=True).start()
    out: list[str] = []
    thread = _stream_in_thread(srv.url, out)
    deadline = time.monotonic() + 5
    while not engine.handles and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    srv.stop()
    thread.join(10)
    assert engine.closed
    assert time.monotonic() - t0 < grace + 3
    body = out[0]
    assert body.rstrip().endswith("data: [DONE]")
    final = [json.loads(line[6:]) for line in body.splitlines()
             if line.startswith("data: {") and '"finish_reason":"' in line][-1]
    assert final["choices"][0]["finish_detail"] == detail
    with pytest.raises(httpx.ConnectError):  # no longer accepting
        httpx.get(srv.url + "/health", timeout=2)
