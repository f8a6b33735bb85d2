"""OpenAI-shaped errors for every failure, API keys, body limits, CORS, exposure rules."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest

from vibe_edge.errors import SettingsError
from vibe_edge.server import BackgroundServer, ServerConfig, check_exposure, is_loopback_host, read_api_keys

from .conftest import MODEL_ID
from doubles import ScriptedEngine

KEY = "sk-test-0123456789"
CHAT = "/v1/chat/completions"
HELLO = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}


def assert_openai_error(reply: httpx.Response, status: int, code: str | None = None, param: str | None = None):
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize("body, param", [
    ({"messages": []}, "messages"),
    ({}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0].type"),
    ({**HELLO, "temperature": 3}, "temperature"),
    ({**HELLO, "temperature": "warm"}, "temperature"),
    ({**HELLO, "top_p": 1.5}, "top_p"),
    ({**HELLO, "max_tokens": 0}, "max_tokens"),
    ({**HELLO, "max_tokens": -5}, "max_tokens"),
    ({**HELLO, "n": 5}, "n"),  # more samples than the server's 4 slots
    ({**HELLO, "n": 0}, "n"),
    ({**HELLO, "logprobs": True}, "logprobs"),
    ({**HELLO, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({**HELLO, "stop": ["a"] * 17}, "stop"),
    ({**HELLO, "logit_bias": {"abc": 1}}, "logit_bias"),
    ({**HELLO, "logit_bias": {"5": 500}}, "logit_bias"),
    ({**HELLO, "preset": "poetry"}, "preset"),
    ({**HELLO, "thinking_budget": -2}, "thinking_budget"),
    ({**HELLO, "response_format": {"type": "xml"}}, "response_format.type"),
    ({**HELLO, "response_format": {"type": "json_schema"}}, "response_format"),
    ({**HELLO, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "frobnicate"}}}}, "response_format"),
    ({"messages": [{"role": "user", "content": "\ud800"}]}, "messages"),
])
def test_bad_parameters_are_400_with_the_parameter_named(client, body, param):
    raw = json.dumps(body)  # ASCII escapes, so a lone surrogate travels as "\\ud800"
    reply = client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    assert_openai_error(reply, 400, param=param)


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b"null", b'"text"', b"\xff\xfe"])
def test_malformed_bodies_are_400(client, raw):
    assert_openai_error(client.post(CHAT, content=raw, headers={"content-type": "application/json"}), 400)


def test_completions_errors(client):
    assert_openai_error(client.post("/v1/completions", json={"prompt": ""}), 400, param="prompt")
    assert_openai_error(client.post("/v1/completions", json={"prompt": ["a", "b"]}), 400, param="prompt")
    assert_openai_error(client.post("/v1/completions", json={"prompt": [1, 2]}), 400)
    assert_openai_error(client.post("/v1/completions", json={"prompt": "x", "suffix": "y"}), 400, param="suffix")
    assert_openai_error(client.post("/v1/completions", json={"prompt": "x", "best_of": 2}), 400, param="best_of")


def test_context_length_exceeded(client):
    long = {"messages": [{"role": "user", "content": "word " * 3000}], "max_tokens": 4}
    error = assert_openai_error(client.post(CHAT, json=long), 400, code="context_length_exceeded")
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "text/plain",
                                   "multipart/form-data; boundary=x", "text/plain; charset=utf-8", None])
def test_bodies_not_declared_json_are_415(client, ctype):
    # What a web page may POST cross-site without a preflight (or no type at all): never read
    # as JSON, so a page cannot smuggle a completion request in a form or a text body.
    headers = {"content-type": ctype} if ctype else {}
    error = assert_openai_error(client.post(CHAT, content=json.dumps(HELLO), headers=headers), 415,
                                code="unsupported_media_type")
    assert "Content-Type: application/json" in error["hint"]


def test_json_with_a_charset_is_read(client):
    reply = client.post(CHAT, content=json.dumps(HELLO),
                        headers={"content-type": "application/json; charset=utf-8"})
    assert reply.status_code == 200, reply.text


def test_unknown_routes_and_methods(client):
    assert_openai_error(client.get("/v1/nothing"), 404, code="not_found")
    assert_openai_error(client.get(CHAT), 405)
    assert_openai_error(client.delete("/v1/models"), 405)


def test_body_limit_413(engine):
    with BackgroundServer(ServerConfig(model_id=MODEL_ID, max_body_bytes=2048), engine=engine) as srv:
        big = {"messages": [{"role": "user", "content": "x" * 5000}]}
        assert_openai_error(httpx.post(srv.url + CHAT, json=big), 413, code="request_too_large")

        def chunked():
            yield b'{"messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}]}'

        reply = httpx.post(srv.url + CHAT, content=chunked(), headers={"content-type": "application/json"})
        assert_openai_error(reply, 413)
        assert httpx.post(srv.url + CHAT, json=HELLO, timeout=30).status_code == 200


@pytest.fixture(scope="module")
def keyed_server(engine):
    srv = BackgroundServer(ServerConfig(model_id=MODEL_ID, api_keys=(KEY, "second-key")), engine=engine)
    srv.start()
    yield srv
    srv.stop()


def test_api_key_required_except_health(keyed_server):
    url = keyed_server.url
    assert httpx.get(url + "/health").status_code == 200
    assert httpx.head(url + "/health").status_code == 200
    error = assert_openai_error(httpx.post(url + CHAT, json=HELLO), 401, code="invalid_api_key")
    assert "Authorization" in error["message"]
    assert httpx.post(url + CHAT, json=HELLO).headers["www-authenticate"] == "Bearer"
    assert_openai_error(httpx.post(url + CHAT, json=HELLO, headers={"Authorization": "Bearer nope"}), 401)
    assert_openai_error(httpx.post(url + CHAT, json=HELLO, headers={"Authorization": KEY}), 401)
    assert_openai_error(httpx.get(url + "/v1/models"), 401)
    assert_openai_error(httpx.get(url + "/metrics"), 401)
    for key in (KEY, "second-key"):
        ok = httpx.post(url + CHAT, json=HELLO, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert ok.status_code == 200
    sdk = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    assert sdk.models.list().data[0].id == MODEL_ID
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_unauthorized_body_is_not_read(keyed_server):
    # 401 comes before the body limit: an anonymous client cannot make the server buffer anything
    reply = httpx.post(keyed_server.url + CHAT, content=b"x" * 100_000)
    assert reply.status_code == 401


def test_cors_off_by_default_and_on_when_configured(client, engine):
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options(CHAT, headers=preflight).headers
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "http://app.example"}).headers
    config = ServerConfig(model_id=MODEL_ID, cors_origins=("http://app.example",), api_keys=(KEY,))
    with BackgroundServer(config, engine=engine) as srv:
        reply = httpx.options(srv.url + CHAT, headers=preflight)
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == "http://app.example"
        other = httpx.options(srv.url + CHAT, headers={**preflight, "Origin": "http://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_exposure_needs_a_key():
    for host in ("127.0.0.1", "localhost", "::1", "127.1.2.3"):
        assert is_loopback_host(host)
        check_exposure(host, ())
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        assert not is_loopback_host(host)
        with pytest.raises(SettingsError, match="API key"):
            check_exposure(host, ())
        check_exposure(host, ("k",))
    with pytest.raises(SettingsError):
        BackgroundServer(ServerConfig(), engine=ScriptedEngine(), host="0.0.0.0")
    with pytest.raises(SettingsError, match="thinking budget"):
        ServerConfig(thinking_budget=-2)


def test_api_key_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# team keys\nalpha\n\n beta \n")
    assert read_api_keys(["gamma"], str(path)) == ("gamma", "alpha", "beta")
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(SettingsError, match="no key"):
        read_api_keys((), str(tmp_path / "empty"))
    with pytest.raises(SettingsError, match="cannot read"):
        read_api_keys((), str(tmp_path / "missing"))
    with pytest.raises(SettingsError):
        ServerConfig(api_keys=("two words",))


def test_503_while_loading_then_200():
    release = threading.Event()
    engine = ScriptedEngine()

    def slow_loader():
        release.wait(10)
        return engine

    with BackgroundServer(ServerConfig(), loader=slow_loader) as srv:
        health = httpx.get(srv.url + "/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        assert "retry-after" in health.headers
        assert_openai_error(httpx.post(srv.url + CHAT, json=HELLO), 503, code="engine_unavailable")
        assert_openai_error(httpx.get(srv.url + "/v1/models"), 503)
        assert "vibe_edge_ready 0.0" in httpx.get(srv.url + "/metrics").text
        release.set()
        srv.host.wait_ready(10)
        assert httpx.get(srv.url + "/health").json()["status"] == "ok"
        assert httpx.post(srv.url + CHAT, json=HELLO).status_code == 200
    assert engine.closed  # a loaded engine belongs to the server and is closed with it


def test_failed_load_is_503_with_the_reason():
    def broken():
        raise SettingsError("no such model file")

    with BackgroundServer(ServerConfig(), loader=broken) as srv:
        srv.host.wait_ready(10)
        health = httpx.get(srv.url + "/health")
        assert health.status_code == 503 and health.json()["status"] == "failed"
        error = assert_openai_error(httpx.post(srv.url + CHAT, json=HELLO), 503)
        assert "no such model file" in error["message"]


def test_503_while_shutting_down():
    srv = BackgroundServer(ServerConfig(), engine=ScriptedEngine()).start()
    srv.host.begin_shutdown(0)
    assert httpx.get(srv.url + "/health").status_code == 503
    assert_openai_error(httpx.post(srv.url + CHAT, json=HELLO), 503)
    srv.stop()
