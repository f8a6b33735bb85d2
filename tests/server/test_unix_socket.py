"""Unix socket serving: owner-only, stale sockets replaced, live ones and other files left alone,
removed on exit."""

from __future__ import annotations

import os
import socket
import stat

import httpx
import pytest

from vibe_edge.server import BackgroundServer, ServerConfig, bind_unix
from vibe_edge.server.runner import ServerStartError, remove_own_socket

from doubles import ScriptedEngine


def _uds_client(path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://localhost", timeout=30)


def test_socket_is_owner_only_and_removed_on_exit(tmp_path):
    path = tmp_path / "vibe.sock"
    srv = BackgroundServer(ServerConfig(), engine=ScriptedEngine(), socket_path=path).start()
    try:
        mode = path.lstat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert srv.url == f"unix:{path}"
        with _uds_client(path) as client:
            assert client.get("/health").json()["status"] == "ok"
            reply = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
            assert reply.json()["choices"][0]["message"]["content"].endswith("\\boxed{4}")
    finally:
        srv.stop()
    assert not path.exists()


def test_stale_socket_is_replaced(tmp_path):
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # a server that died without cleaning up: the file stays, nobody listens
    dead.close()
    assert path.exists()
    listener = bind_unix(path)
    try:
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
    finally:
        listener.close()
    assert not path.exists()


def test_live_socket_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "live.sock"
    srv = BackgroundServer(ServerConfig(), engine=ScriptedEngine(), socket_path=path).start()
    try:
        with pytest.raises(ServerStartError, match="already listening"):
            bind_unix(path)
        with _uds_client(path) as client:  # the first server still works
            assert client.get("/health").status_code == 200
    finally:
        srv.stop()


def test_other_files_are_never_replaced(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("precious")
    with pytest.raises(ServerStartError, match="not a socket"):
        bind_unix(path)
    assert path.read_text() == "precious"
    with pytest.raises(ServerStartError, match="not a directory"):
        bind_unix(tmp_path / "missing-dir" / "x.sock")
    with pytest.raises(ServerStartError, match="too long"):
        bind_unix(tmp_path / ("x" * 200 + ".sock"))


def test_a_successors_socket_is_not_removed(tmp_path):
    path = tmp_path / "s.sock"
    first = bind_unix(path)
    first.sock.close()
    os.unlink(path)
    second = bind_unix(path)  # another server took the path over
    first.close()  # the first one exiting late must not delete the second one's socket
    assert path.exists()
    second.close()
    assert not path.exists()
    remove_own_socket(path, (0, 0, 0))  # missing file: nothing to do
