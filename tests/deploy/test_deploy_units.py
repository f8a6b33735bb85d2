"""The systemd unit, the Dockerfile and the compose file: what can be checked without systemd
running or a container image (systemd-analyze, and the commands they run, run here)."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import yaml
from deploy_helpers import require_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "vibe-edge@.service"
VIBE_EDGE = Path(sys.executable).with_name("vibe-edge")


def _serve_refuses_only_the_missing_key_file(args: list[str]) -> None:
    """Run a deployment's `vibe-edge serve ...` here: every flag must parse, and it stops at
    the key file that only the deployment has, before loading anything."""
    assert args[:2] == ["vibe-edge", "serve"], args
    proc = subprocess.run([str(VIBE_EDGE), *args[1:]], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "cannot read the API key file" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_systemd_unit_verifies(tmp_path):
    analyze = require_tool("systemd-analyze")
    text = UNIT.read_text()
    [exec_start] = re.findall(r"^ExecStart=(\S+)", text, re.MULTILINE)
    assert exec_start == "/opt/vibe-edge/.venv/bin/vibe-edge"
    # The same unit with the binary where it is installed here (verify checks it exists).
    (tmp_path / UNIT.name).write_text(text.replace(exec_start, str(VIBE_EDGE)))
    proc = subprocess.run([analyze, "verify", f"./{UNIT.name.replace('@', '@8081')}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    said = (proc.stdout + proc.stderr).strip()  # a bad line is a warning, not an exit status
    assert proc.returncode == 0 and not said, said


def test_the_systemd_units_command_is_one_serve_understands():
    [line] = re.findall(r"^ExecStart=(.+)$", UNIT.read_text(), re.MULTILINE)
    args = shlex.split(line.replace("%i", "8081").replace("%H", socket.gethostname()))
    _serve_refuses_only_the_missing_key_file(["vibe-edge", *args[1:]])
    # Its SIGTERM wait covers serve's grace period.
    [stop] = re.findall(r"^TimeoutStopSec=(\d+)$", UNIT.read_text(), re.MULTILINE)
    assert int(stop) > 10


def _dockerfile_json(instruction: str) -> list[str]:
    [value] = re.findall(rf"^{instruction} (\[.*\])$", (DEPLOY / "docker" / "Dockerfile").read_text(),
                         re.MULTILINE)
    return json.loads(value)


def test_the_container_and_compose_commands_are_ones_serve_understands():
    entrypoint = _dockerfile_json("ENTRYPOINT")
    _serve_refuses_only_the_missing_key_file(entrypoint + _dockerfile_json("CMD"))
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    instances = sorted(name for name in compose["services"] if name.startswith("vibe-edge-"))
    assert len(instances) == 3
    for name in instances:
        command = compose["services"][name]["command"]
        assert command[command.index("--instance") + 1] == name
        _serve_refuses_only_the_missing_key_file(entrypoint + command)


def test_compose_mounts_exist_and_name_every_instance():
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    instances = {f"{name}:8080" for name in compose["services"] if name.startswith("vibe-edge-")}
    for service in ("nginx", "prometheus"):
        for volume in compose["services"][service]["volumes"]:
            assert (DEPLOY / "docker" / volume.split(":")[0]).exists(), volume
    http_part = (DEPLOY / "docker" / "nginx" / "vibe-edge-http.conf").read_text()
    assert set(re.findall(r"server (\S+) max_fails", http_part)) == instances
    scrape = yaml.safe_load((DEPLOY / "docker" / "prometheus" / "prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    assert set(job["static_configs"][0]["targets"]) == instances
    assert job["authorization"]["credentials_file"] == "/run/secrets/vibe_edge_key"
