"""`vibe-edge deploy nginx`: addresses checked, the files written whole, nginx accepts them, and
the routing they describe holds against real upstreams (small HTTP servers that say who they are)."""

from __future__ import annotations

import http.server
import importlib.util
import json
import shlex
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import httpx
import pytest
from deploy_helpers import require_tool
from typer.testing import CliRunner

from vibe_edge.cli.app import app
from vibe_edge.deploy import nginx
from vibe_edge.deploy.local import free_port
from vibe_edge.errors import SettingsError
from vibe_edge.server.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_RETRY_AFTER_S

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083")


@pytest.mark.parametrize("given, written", [
    ("127.0.0.1:8081", "127.0.0.1:8081"),
    (" jetson-2.LAN:8080 ", "jetson-2.lan:8080"),
    ("[::1]:8081", "[::1]:8081"),
    ("[0:0:0:0:0:0:0:1]:9000", "[::1]:9000"),
    ("unix:/run/vibe-edge/a.sock", "unix:/run/vibe-edge/a.sock"),
])
def test_addresses_are_written_in_nginx_spelling(given, written):
    assert nginx.parse_address(given) == written


@pytest.mark.parametrize("bad", [
    "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "host:http", ":8080",
    "127.0.0.1:80;", "a;b:80", "evil}:80", "two words:80", "[zz::1]:80", "host_name:80",
    "unix:relative.sock", "unix:/tmp/a;b.sock", "unix:/tmp/a b.sock", "unix:/tmp/$x.sock",
])
def test_anything_that_could_change_the_config_is_refused(bad):
    with pytest.raises(SettingsError) as info:
        nginx.parse_address(bad)
    assert info.value.hint


def test_config_checks():
    with pytest.raises(SettingsError, match="no backends"):
        nginx.NginxConfig(backends=())
    with pytest.raises(SettingsError, match="given twice"):
        nginx.NginxConfig(backends=("127.0.0.1:8081", " 127.0.0.1:8081"))
    with pytest.raises(SettingsError, match="Unix socket"):
        nginx.NginxConfig(backends=BACKENDS, listen="unix:/tmp/x.sock")
    with pytest.raises(SettingsError, match="fail_timeout_s"):
        nginx.NginxConfig(backends=BACKENDS, fail_timeout_s=0)
    assert not nginx.NginxConfig(backends=BACKENDS).exposed
    assert not nginx.NginxConfig(backends=BACKENDS, listen="[::1]:8080").exposed
    assert nginx.NginxConfig(backends=BACKENDS, listen="0.0.0.0:8080").exposed
    assert nginx.NginxConfig(backends=BACKENDS, listen="edge.lan:8080").exposed


def test_defaults_follow_the_servers():
    # nginx.py keeps its own copies so writing a file never loads llama.cpp.
    assert nginx.DEFAULT_MAX_BODY_BYTES == DEFAULT_MAX_BODY_BYTES
    assert nginx.DEFAULT_RETRY_AFTER_S == DEFAULT_RETRY_AFTER_S


def test_the_files_hold_the_routing_and_the_parts_are_in_the_whole():
    files = nginx.render(nginx.NginxConfig(backends=BACKENDS, listen="127.0.0.1:9000", tries=2))
    whole, http_part, server_part = (files[n] for n in
                                     (nginx.CONF_NAME, nginx.HTTP_PART_NAME, nginx.SERVER_PART_NAME))
    for backend in BACKENDS:  # in both upstreams
        assert whole.count(f"server {backend} max_fails=3 fail_timeout=10s;") == 2
    assert "least_conn;" in http_part and "hash $vibe_edge_key consistent;" in http_part
    assert "proxy_next_upstream error timeout http_429 http_503 non_idempotent;" in server_part
    assert "proxy_next_upstream_tries 2;" in server_part and "proxy_buffering off;" in server_part
    assert "listen 127.0.0.1:9000;" in whole and "listen" not in server_part
    for part in (http_part, server_part):  # the same text, indented
        for line in part.splitlines():
            assert line.strip() in whole
    assert "# Written by: vibe-edge deploy nginx --backend 127.0.0.1:8081" in whole
    assert "--listen 127.0.0.1:9000 --tries 2" in whole


def test_nginx_accepts_the_whole_and_the_parts_in_an_existing_config(tmp_path):
    binary = require_tool("nginx")
    config = nginx.NginxConfig(backends=(*BACKENDS, "unix:/run/vibe-edge.sock"))
    nginx.write(config, tmp_path / "whole")
    ok, said = nginx.check(tmp_path / "whole", binary)
    assert ok, said
    # An existing nginx: its own http and server blocks, the parts included where they go.
    existing = tmp_path / "existing"
    nginx.write(config, existing)
    (existing / "site.conf").write_text(
        "events {}\nhttp {\n  include vibe-edge-http.conf;\n"
        "  server {\n    listen 127.0.0.1:9;\n    include vibe-edge-server.conf;\n  }\n}\n")
    proc = subprocess.run([binary, "-t", "-p", f"{existing}/", "-c", "site.conf", "-e",
                           "logs/error.log", "-g", "pid logs/nginx.pid;"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_write_replaces_whole_files_and_leaves_no_temp_files(tmp_path):
    nginx.write(nginx.NginxConfig(backends=BACKENDS), tmp_path)
    nginx.write(nginx.NginxConfig(backends=BACKENDS[:2]), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [nginx.CONF_NAME, nginx.HTTP_PART_NAME, nginx.SERVER_PART_NAME, "logs", "temp"])
    assert "8083" not in (tmp_path / nginx.CONF_NAME).read_text()


def test_cli_writes_checks_and_warns_when_exposed(tmp_path):
    require_tool("nginx")
    out = tmp_path / "lb"
    result = CliRunner().invoke(app, ["deploy", "nginx", "-b", "127.0.0.1:8081", "-b", "127.0.0.1:8082",
                                      "--listen", "0.0.0.0:8080", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nginx -t accepts it" in result.output
    assert "API key" in result.output  # listening beyond loopback
    assert (out / "nginx.conf").is_file() and (out / "logs").is_dir()


def test_cli_refuses_a_bad_backend_and_writes_nothing(tmp_path):
    out = tmp_path / "lb"
    result = CliRunner().invoke(app, ["deploy", "nginx", "-b", "127.0.0.1:8081;", "--out", str(out)])
    assert result.exit_code == 1
    assert "has no valid port" in result.output and "hint" in result.output
    assert not out.exists()


def _example_dirs() -> list[Path]:
    return sorted(p.parent for p in (REPO / "deploy").rglob("nginx.conf")) + sorted(
        p.parent for p in (REPO / "deploy").rglob("prometheus.yml"))


@pytest.mark.parametrize("folder", _example_dirs(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_shipped_examples_are_what_the_command_in_their_header_writes(folder, tmp_path):
    main = folder / ("nginx.conf" if (folder / "nginx.conf").exists() else "prometheus.yml")
    [header] = [line for line in main.read_text().splitlines() if line.startswith("# Written by: ")]
    args = shlex.split(header.removeprefix("# Written by: "))
    assert args[0] == "vibe-edge"
    extra = ["--no-check"] if args[2] == "nginx" else []
    result = CliRunner().invoke(app, [*args[1:], "--out", str(tmp_path), *extra])
    assert result.exit_code == 0, result.output
    for shipped in folder.glob("*"):
        if shipped.is_file() and not shipped.name.endswith(".test.yml"):
            assert (tmp_path / shipped.name).read_text() == shipped.read_text(), (
                f"{shipped} is out of date: rerun `{header.removeprefix('# Written by: ')} --out "
                f"{folder.relative_to(REPO)}`")


# -- the routing itself, against stand-in upstreams ------------------------------------------------


class _Named(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _upstream(status: int = 200) -> tuple[_Named, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"port": self.server.server_port,
                               "authorization": self.headers.get("Authorization")}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = _Named(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_port}"


@pytest.fixture
def balancer(tmp_path):
    """Three upstreams that answer with their port, one that is always busy (429), behind the
    generated nginx.conf."""
    binary = require_tool("nginx")
    servers = [_upstream() for _ in range(3)]
    busy, busy_address = _upstream(429)
    port = free_port()
    config = nginx.NginxConfig(backends=(*(a for _, a in servers), busy_address), listen=f"127.0.0.1:{port}")
    nginx.write(config, tmp_path)
    proc = subprocess.Popen([binary, "-p", f"{tmp_path}/", "-c", "nginx.conf", "-e", "logs/error.log",
                             "-g", "daemon off;"], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url + "/metrics", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    pytest.fail(proc.stderr.read().decode())
                threading.Event().wait(0.05)
        yield url, {a for _, a in servers}, busy_address
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        for server, _ in [*servers, (busy, busy_address)]:
            server.shutdown()


def _where(reply: httpx.Response) -> str:
    assert reply.status_code == 200, reply.text
    return f"127.0.0.1:{reply.json()['port']}"


def test_a_key_in_the_header_or_the_user_field_always_reaches_the_same_upstream(balancer):
    url, good, busy = balancer
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(8):
            by_header = {_where(client.post("/v1/chat/completions", json={"messages": []},
                                            headers={"X-Session-Id": f"s{i}"})) for _ in range(3)}
            assert len(by_header) == 1 and by_header <= good  # never the busy one: retried
            # The `user` field of the body, read by nginx itself; a quoted "user" inside a
            # message and the "user" role are not the key.
            body = {"messages": [{"role": "user", "content": 'say "user": "zed"'}], "user": f"u{i}"}
            by_user = {_where(client.post("/v1/chat/completions", json=body)) for _ in range(3)}
            assert len(by_user) == 1
            assert by_user == {_where(client.post("/v1/chat/completions",
                                                  headers={"X-Session-Id": f"u{i}"}, json={}))}


def test_no_key_spreads_by_load_and_busy_means_a_retry_elsewhere(balancer):
    url, good, busy = balancer
    with httpx.Client(base_url=url, timeout=10) as client:
        body = {"messages": [{"role": "user", "content": 'a message with "user": "zed" inside'}]}
        seen = [_where(client.post("/v1/chat/completions", json=body)) for _ in range(12)]
        assert set(seen) == good  # round the idle ones; the 429 one never answers a client
        # The Authorization header reaches the instance untouched.
        reply = client.get("/v1/models", headers={"Authorization": "Bearer k1"})
        assert reply.json()["authorization"] == "Bearer k1"
        # /metrics is the instances' own: the balancer says so instead of showing one of them.
        metrics = client.get("/metrics")
        assert metrics.status_code == 404 and "scrape" in metrics.json()["error"]["message"]


def test_when_no_instance_answers_the_client_gets_an_openai_error(tmp_path):
    binary = require_tool("nginx")
    port = free_port()
    dead = [f"127.0.0.1:{free_port()}" for _ in range(2)]  # nobody listens there
    nginx.write(nginx.NginxConfig(backends=tuple(dead), listen=f"127.0.0.1:{port}"), tmp_path)
    proc = subprocess.Popen([binary, "-p", f"{tmp_path}/", "-c", "nginx.conf", "-e", "logs/error.log",
                             "-g", "daemon off;"])
    try:
        for _ in range(100):
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={}, timeout=5)
                break
            except httpx.ConnectError:
                threading.Event().wait(0.05)
        assert reply.status_code == 503 and reply.headers["retry-after"] == "2"
        assert reply.json()["error"]["code"] == "no_instance_available"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_an_installed_vibe_edge_carries_the_templates(tmp_path):
    # `vibe-edge deploy` reads them as package data: a wheel without them would fail for users.
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation,
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = tmp_path.glob("vibe_edge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"vibe_edge/deploy/templates/{p.name}"
                 for p in (REPO / "vibe_edge" / "deploy" / "templates").iterdir()}
    assert templates and templates <= names
