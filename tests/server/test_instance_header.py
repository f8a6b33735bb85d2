"""Every response names the instance that produced it (X-Vibe-Edge-Instance): behind a
balancer that is how a client, an operator or a test sees where a conversation lives."""

from __future__ import annotations

import httpx
import pytest

from vibe_edge.errors import SettingsError
from vibe_edge.server import BackgroundServer, ServerConfig

HEADER = "X-Vibe-Edge-Instance"


def test_by_default_the_instance_is_the_address_it_listens_on(engine):
    with BackgroundServer(ServerConfig(model_id="demo"), engine=engine) as server:
        address = server.url.removeprefix("http://")
        assert not address.endswith(":0")  # the port it took, not the one asked for
        with httpx.Client(base_url=server.url, timeout=60) as client:
            health = client.get("/health")
            chat = client.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            with client.stream("POST", "/v1/chat/completions", json={
                    "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
                    "stream": True}) as stream:
                stream.read()
            invalid = client.post("/v1/chat/completions", json={"messages": "nope"})
            missing = client.get("/nowhere")
        for reply in (health, chat, stream, invalid, missing):
            assert reply.headers[HEADER] == address, reply.request.url


def test_a_given_name_goes_on_every_response_refusals_included(engine):
    config = ServerConfig(model_id="demo", instance="edge-2", api_keys=("k",))
    with BackgroundServer(config, engine=engine) as server:
        refused = httpx.get(server.url + "/v1/models", timeout=30)
        assert refused.status_code == 401 and refused.headers[HEADER] == "edge-2"
        ok = httpx.get(server.url + "/v1/models", headers={"Authorization": "Bearer k"}, timeout=30)
        assert ok.status_code == 200 and ok.headers[HEADER] == "edge-2"


def test_the_unix_socket_path_names_a_socket_server(engine, tmp_path):
    path = tmp_path / "s.sock"
    with BackgroundServer(ServerConfig(), engine=engine, socket_path=path) as server:
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://localhost", timeout=30) as client:
            assert client.get("/health").headers[HEADER] == str(server.socket_path)


@pytest.mark.parametrize("name", ["", " edge", "edge\n2", "é", "x" * 201])
def test_a_name_that_cannot_be_a_header_is_refused(name):
    with pytest.raises(SettingsError) as info:
        ServerConfig(instance=name)
    assert info.value.param == "instance"
