"""`vibe-edge serve` as a user runs it: a subprocess on the demo model, stopped by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def _serve(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vibe_edge", "serve", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 90) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    proc.kill()
    raise AssertionError(f"{needle!r} never printed; output:\n{''.join(lines)}")


def test_serve_on_a_unix_socket_and_stop_on_sigterm(tmp_path):
    path = tmp_path / "serve.sock"
    proc = _serve("--model", "demo", "--socket", str(path), "--slots", "1", "--ctx", "512", "--grace", "2")
    try:
        lines = _wait_for_line(proc, "vibe-edge: ready")
        assert any(f"unix:{path}" in line for line in lines)
        assert "demo" in lines[-1]
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://localhost", timeout=60) as client:
            reply = client.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0})
            assert reply.status_code == 200 and reply.json()["model"] == "demo"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stdout.read()
        assert not path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_on_port_0_takes_a_free_port_and_prints_it():
    proc = _serve("--model", "demo", "--port", "0", "--slots", "1", "--ctx", "512", "--grace", "2")
    try:
        lines = _wait_for_line(proc, "vibe-edge: ready")
        [url] = re.findall(r"listening on (http://127\.0\.0\.1:\d+)", "".join(lines))
        assert not url.endswith(":0")
        assert httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"] == "demo"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_names_its_instance_in_every_response():
    proc = _serve("--model", "demo", "--port", "0", "--slots", "1", "--ctx", "512", "--grace", "2",
                  "--instance", "edge-7")
    try:
        lines = _wait_for_line(proc, "vibe-edge: ready")
        [url] = re.findall(r"listening on (http://127\.0\.0\.1:\d+)", "".join(lines))
        assert httpx.get(url + "/health", timeout=30).headers["X-Vibe-Edge-Instance"] == "edge-7"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_public_host_without_a_key():
    proc = _serve("--model", "demo", "--host", "0.0.0.0", "--port", "18999")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "refusing to listen on 0.0.0.0" in out and "--api-key" in out


def test_serve_reports_a_missing_model_before_listening(tmp_path):
    proc = _serve("--model", str(tmp_path / "nope.gguf"), "--port", "18999")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "no model file" in out and "listening" not in out
