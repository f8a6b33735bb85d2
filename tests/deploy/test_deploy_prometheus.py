"""Prometheus: the scrape configuration and the alert rules are valid (promtool), the rules
behave as their tests say, and every metric they name is one a real /metrics exposes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
from deploy_helpers import require_tool
from typer.testing import CliRunner

from vibe_edge.cli.app import app
from vibe_edge.deploy import prometheus
from vibe_edge.errors import SettingsError
from vibe_edge.server import BackgroundServer, ServerConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "prometheus"


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("promtool"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_promtool_accepts_the_config_with_and_without_a_key(tmp_path):
    key = tmp_path / "key"
    key.write_text("secret\n")
    for api_key_file in (None, str(key)):
        out = tmp_path / ("keyed" if api_key_file else "open")
        prometheus.write(prometheus.PrometheusConfig(targets=("127.0.0.1:8081", "edge-2:8080"),
                                                     api_key_file=api_key_file), out)
        proc = _promtool("check", "config", "prometheus.yml", cwd=out)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS: 5 rules found" in proc.stdout + proc.stderr
        assert ("credentials_file" in (out / "prometheus.yml").read_text()) == bool(api_key_file)


def test_the_alert_rules_fire_as_their_tests_say():
    proc = _promtool("test", "rules", "vibe-edge-alerts.test.yml", cwd=EXAMPLE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_the_shipped_rules_are_the_packaged_ones():
    assert (EXAMPLE / prometheus.RULES_NAME).read_text() == prometheus.alert_rules()


def test_every_metric_the_rules_use_is_exposed(engine):
    names = set(re.findall(r"\bvibe_edge_[a-z_]+", prometheus.alert_rules()))
    assert {"vibe_edge_requests_total", "vibe_edge_queue_depth",
            "vibe_edge_time_to_first_token_seconds_bucket"} <= names
    with BackgroundServer(ServerConfig(model_id="demo"), engine=engine) as server:
        reply = httpx.post(server.url + "/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert reply.status_code == 200
        exposed = set(re.findall(r"^(vibe_edge_[a-z_]+)", httpx.get(server.url + "/metrics").text,
                                 re.MULTILINE))
    assert names <= exposed, f"not exposed: {sorted(names - exposed)}"


def test_targets_are_checked():
    with pytest.raises(SettingsError, match="Unix socket"):
        prometheus.PrometheusConfig(targets=("unix:/run/a.sock",))
    with pytest.raises(SettingsError, match="twice"):
        prometheus.PrometheusConfig(targets=("127.0.0.1:8081", "127.0.0.1:8081"))
    with pytest.raises(SettingsError, match="no instances"):
        prometheus.PrometheusConfig(targets=())
    with pytest.raises(SettingsError, match="key file"):
        prometheus.PrometheusConfig(targets=("a:1",), api_key_file="/etc/my keys")


def test_cli_writes_both_files(tmp_path):
    result = CliRunner().invoke(app, ["deploy", "prometheus", "-b", "127.0.0.1:8081", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prometheus.yml", "vibe-edge-alerts.yml"]
    assert "- 127.0.0.1:8081" in (tmp_path / "prometheus.yml").read_text()
