"""What a web page in the user's browser could do to a keyless loopback server: DNS rebinding
(a foreign Host), CSRF (a foreign Origin, text/plain and form bodies), and the plain-text errors
of CORS and uvicorn; /docs must work offline."""

from __future__ import annotations

import json
import re
import socket

import httpx
import pytest

from vibe_edge.server import BackgroundServer, ServerConfig

from .conftest import MODEL_ID
from .test_errors_and_security import CHAT, HELLO, KEY, assert_openai_error


def _port(srv: BackgroundServer) -> int:
    return int(srv.url.rsplit(":", 1)[1])


def test_the_attack_from_the_report_gets_no_completion(server):
    """Host: attacker.example, Origin: https://attacker.example, Content-Type: text/plain."""
    reply = httpx.post(server.url + CHAT, content=json.dumps(HELLO), headers={
        "Host": "attacker.example", "Origin": "https://attacker.example", "Content-Type": "text/plain"})
    assert_openai_error(reply, 403, code="host_not_allowed")
    assert "choices" not in reply.text


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8080", "127.0.0.1.nip.io",
                                  "192.168.1.10", "localhost.attacker.example", ""])
def test_a_keyless_server_refuses_foreign_host_names(server, host):
    reply = httpx.post(server.url + CHAT, json=HELLO, headers={"Host": host})
    error = assert_openai_error(reply, 403, code="host_not_allowed")
    assert "--allowed-host" in error["hint"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "127.1.2.3",
                                  "[::1]:{port}", "app.localhost:{port}"])
def test_loopback_host_names_are_served(server, host):
    reply = httpx.get(server.url + "/v1/models", headers={"Host": host.format(port=_port(server))})
    assert reply.status_code == 200, reply.text


def test_configured_host_names_and_keyed_servers(engine):
    with BackgroundServer(ServerConfig(model_id=MODEL_ID, allowed_hosts=("MyBox.lan",)), engine=engine) as srv:
        assert httpx.get(srv.url + "/v1/models", headers={"Host": "mybox.lan:8080"}).status_code == 200
        assert_openai_error(httpx.get(srv.url + "/v1/models", headers={"Host": "other.lan"}), 403)
    # With an API key a page has no credential to send, so any Host is fine (reverse proxies).
    with BackgroundServer(ServerConfig(model_id=MODEL_ID, api_keys=(KEY,)), engine=engine) as srv:
        reply = httpx.get(srv.url + "/v1/models", headers={"Host": "api.example.com",
                                                            "Authorization": f"Bearer {KEY}"})
        assert reply.status_code == 200


def test_a_unix_socket_takes_any_host(engine, tmp_path):
    with BackgroundServer(ServerConfig(model_id=MODEL_ID), engine=engine,
                          socket_path=tmp_path / "s.sock") as srv:
        transport = httpx.HTTPTransport(uds=str(srv.socket_path))
        with httpx.Client(transport=transport, base_url="http://whatever.example") as client:
            assert client.get("/v1/models").status_code == 200


@pytest.mark.parametrize("origin", ["https://attacker.example", "null", "http://localhost:1",
                                    "file://", "http://127.0.0.1"])
def test_cross_origin_requests_are_refused(server, origin):
    reply = httpx.post(server.url + CHAT, json=HELLO, headers={"Origin": origin})
    error = assert_openai_error(reply, 403, code="origin_not_allowed")
    assert "--cors-origin" in error["hint"]


def test_same_origin_requests_are_served(server):
    # The /docs page's "Try it out" sends Origin: the server itself.
    reply = httpx.get(server.url + "/v1/models", headers={"Origin": server.url})
    assert reply.status_code == 200


def test_cors_origins_are_served_and_cors_refusals_are_openai_errors(engine):
    config = ServerConfig(model_id=MODEL_ID, cors_origins=("http://app.example",))
    with BackgroundServer(config, engine=engine) as srv:
        ok = httpx.post(srv.url + CHAT, json=HELLO, headers={"Origin": "http://app.example"}, timeout=60)
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://app.example"
        preflight = httpx.options(srv.url + CHAT, headers={
            "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-Not-Allowed"})
        error = assert_openai_error(preflight, 400, code="cors_refused")
        assert "headers" in error["message"].lower()
        assert_openai_error(httpx.post(srv.url + CHAT, json=HELLO, headers={"Origin": "http://evil.example"}),
                            403, code="origin_not_allowed")


def test_uvicorns_own_400_is_an_openai_error(server):
    port = _port(server)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon in this header\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_http_request" and error["type"] == "invalid_request_error"


def test_docs_work_offline(server):
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert urls and not [u for u in urls if "://" in u], f"the page loads from outside: {urls}"
    for url in urls:
        asset = httpx.get(server.url + url)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert httpx.get(server.url + "/openapi.json").json()["info"]["title"] == "vibe-edge"
    assert httpx.get(server.url + "/redoc").status_code == 404  # a CDN page: not served
