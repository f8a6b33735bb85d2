"""Hub behaviour against a pre-filled local cache, the registry writers, and the CLI commands.

The hub is the one thing not used for real (unreachable here): a local HF cache stands for it,
and a tiny HTTP server answers with the hub's error headers for the unknown/gated cases.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vibe_edge.cli.app import app
from vibe_edge.registry import Manifest, list_models, read_manifest, register_model, remove_model, write_manifest

REPO = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fill_cache(cache: Path, repo: str, files: dict[str, Path], commit: str = COMMIT) -> Path:
    """Lay files out exactly as huggingface-hub's cache does: blobs, snapshots/<commit>, refs/main."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    for name, src in files.items():
        blob = root / "blobs" / f"{abs(hash((repo, name))):x}"
        shutil.copyfile(src, blob)
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    return snap


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _run_cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    """The real CLI in a fresh process (huggingface-hub reads HF_* variables at import)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_extra}
    return subprocess.run([sys.executable, "-m", "vibe_edge", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


# --- hub: offline, from the cache ----------------------------------------------------------------

def test_convert_from_cached_hub_repo_offline(tiny_tied, tmp_path, hub_cache):
    fill_cache(hub_cache, "WeiboAI/VibeThinker-tiny", {p.name: p for p in tiny_tied.iterdir()})
    models = tmp_path / "models"
    proc = _run_cli(["convert", "WeiboAI/VibeThinker-tiny", "--out", str(models), "--no-verify", "--json"],
                    {"HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(models / "VibeThinker-tiny-BF16.manifest.json")
    assert manifest is not None
    assert manifest.source["repo"] == "WeiboAI/VibeThinker-tiny"
    assert manifest.source["revision"] == COMMIT
    from vibe_edge.gguf_reader import read_gguf

    fields = read_gguf(models / "VibeThinker-tiny-BF16.gguf").fields
    assert fields["vibe_edge.source.repo"] == "WeiboAI/VibeThinker-tiny"
    assert fields["vibe_edge.source.revision"] == COMMIT


def test_offline_and_not_cached_is_a_clear_error(hub_cache, tmp_path):
    from vibe_edge.convert.errors import HubError
    from vibe_edge.convert.hub import download_checkpoint

    with pytest.raises(HubError, match="not in the local cache") as exc:
        download_checkpoint("nobody/never-downloaded")
    assert "network" in exc.value.hint


def test_pull_from_cache_checks_and_registers(hub_cache, tmp_path, tiny_tied_gguf):
    from vibe_edge.convert.pipeline import PullRequest, pull_model

    fill_cache(hub_cache, "mradermacher/VibeThinker-tiny-GGUF",
               {"VibeThinker-tiny.Q4_K_M.gguf": tiny_tied_gguf})
    models = tmp_path / "models"
    manifest = pull_model(PullRequest(repo="mradermacher/VibeThinker-tiny-GGUF", out_dir=models, quant="q4_k_m"))
    assert manifest.name == "VibeThinker-tiny.Q4_K_M"
    assert manifest.architecture == "qwen2" and manifest.quant == "Q4_K_M"
    assert manifest.source == {"repo": "mradermacher/VibeThinker-tiny-GGUF", "revision": COMMIT,
                               "file": "VibeThinker-tiny.Q4_K_M.gguf"}
    assert (models / "VibeThinker-tiny.Q4_K_M.gguf").stat().st_size == tiny_tied_gguf.stat().st_size
    assert [e.name for e in list_models(models)] == ["VibeThinker-tiny.Q4_K_M"]


def test_pull_missing_quant_lists_what_is_cached(hub_cache, tmp_path, tiny_tied_gguf):
    from vibe_edge.convert.errors import HubError
    from vibe_edge.convert.pipeline import PullRequest, pull_model

    fill_cache(hub_cache, "org/only-q8", {"m.Q8_0.gguf": tiny_tied_gguf})
    with pytest.raises(HubError, match="no single-file Q4_K_M"):
        pull_model(PullRequest(repo="org/only-q8", out_dir=tmp_path / "models", quant="Q4_K_M"))


def test_pull_refuses_a_damaged_file(hub_cache, tmp_path):
    from vibe_edge.errors import ModelFileError
    from vibe_edge.convert.pipeline import PullRequest, pull_model

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 20)
    fill_cache(hub_cache, "org/broken", {"m.Q4_K_M.gguf": junk})
    with pytest.raises(ModelFileError):
        pull_model(PullRequest(repo="org/broken", out_dir=tmp_path / "models"))
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


# --- hub: online errors from a stand-in server ---------------------------------------------------

class _HubErrors(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        if "/gated/" in self.path:
            self.send_response(403)
            self.send_header("X-Error-Code", "GatedRepo")
            self.send_header("X-Error-Message", "Access to model org/gated is restricted.")
        else:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("X-Error-Message", "Repository not found")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "nope"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub():
    server = HTTPServer(("127.0.0.1", 0), _HubErrors)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize("repo,message", [
    ("org/does-not-exist", "no repository 'org/does-not-exist'"),
    ("org/gated", "gated repository"),
])
def test_unknown_and_gated_repos(repo, message, fake_hub, tmp_path):
    proc = _run_cli(["convert", repo, "--out", str(tmp_path / "m"), "--no-verify"],
                    {"HF_ENDPOINT": fake_hub, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path / "c")})
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_no_network_is_a_clear_error(tmp_path):
    proc = _run_cli(["pull", "org/some-gguf", "--out", str(tmp_path / "m")],
                    {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0",
                     "HF_HUB_CACHE": str(tmp_path / "c"), "HF_HUB_ETAG_TIMEOUT": "2"})
    assert proc.returncode == 1
    assert "cannot be reached" in proc.stderr, proc.stderr[-2000:]


# --- registry writers ----------------------------------------------------------------------------

def test_manifest_round_trip_and_remove(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "a.gguf").write_bytes(b"GGUF....")
    m = register_model(models, models / "a.gguf", quant="Q8_0", architecture="qwen2",
                       verification={"logits": {"passed": True}}, custom_key=1)
    import hashlib

    assert m.sha256 == hashlib.sha256(b"GGUF....").hexdigest() and m.size_bytes == 8
    again = read_manifest(models / "a.manifest.json")
    assert again == m and again.extra == {"custom_key": 1}
    write_manifest(models, Manifest(name="a", file="a.gguf", quant="Q4_K_M"))
    assert read_manifest(models / "a.manifest.json").quant == "Q4_K_M"
    assert not list(models.glob(".vibe-edge-tmp*"))
    removed = remove_model(models, "a")
    assert sorted(p.name for p in removed) == ["a.gguf", "a.manifest.json"]
    from vibe_edge.errors import ModelNotFound

    with pytest.raises(ModelNotFound):
        remove_model(models, "a")


# --- CLI: models, models info, models rm, convert --------------------------------------------------

def test_models_commands(tmp_path, tiny_tied_gguf):
    runner = CliRunner()
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(tiny_tied_gguf, models / "tiny.gguf")
    register_model(models, models / "tiny.gguf", quant="BF16", architecture="qwen2", context_length=4096,
                   verification={"tokenizer_parity": {"passed": True}})
    res = runner.invoke(app, ["models", "--models-dir", str(models), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [m["name"] for m in data["models"]] == ["tiny"]
    assert data["models"][0]["verified"] is True and data["models"][0]["quant"] == "BF16"
    res = runner.invoke(app, ["models", "--models-dir", str(models)])
    assert res.exit_code == 0 and "tiny" in res.output and "BF16" in res.output
    res = runner.invoke(app, ["models", "info", "tiny", "--models-dir", str(models), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["metadata"]["tokenizer.ggml.pre"] == "qwen2"
    assert info["metadata"]["tokenizer.ggml.tokens"]["length"] == 151936
    assert info["tensor_types"] == {"BF16": 15, "F32": 11}
    res = runner.invoke(app, ["models", "info", "nope", "--models-dir", str(models)])
    assert res.exit_code == 1 and "no model named 'nope'" in res.output
    res = runner.invoke(app, ["models", "rm", "tiny", "--models-dir", str(models), "--yes", "--json"])
    assert res.exit_code == 0 and len(json.loads(res.output)["removed"]) == 2
    assert list_models(models) == []


def test_models_dir_comes_from_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("VIBE_EDGE_MODELS_DIR", str(tmp_path / "from-env"))
    res = CliRunner().invoke(app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["models_dir"] == str(tmp_path / "from-env")


def test_convert_cli_local_folder(tiny_tied, tmp_path):
    res = CliRunner().invoke(app, ["convert", str(tiny_tied), "--out", str(tmp_path / "m"), "--no-verify",
                                   "--name", "vt", "--quant", "Q8_0", "--keep-unquantized"])
    assert res.exit_code == 0, res.output
    assert sorted(e.name for e in list_models(tmp_path / "m")) == ["vt-BF16", "vt-Q8_0"]
    res = CliRunner().invoke(app, ["convert", str(tiny_tied), "--out", str(tmp_path / "m"), "--no-verify",
                                   "--name", "vt", "--quant", "Q8_0"])
    assert res.exit_code == 1 and "already exists" in res.output
    # A quant-only run uses a temporary intermediate: the registered vt-BF16 is left alone.
    bf16_before = (tmp_path / "m" / "vt-BF16.gguf").stat().st_mtime_ns
    res = CliRunner().invoke(app, ["convert", str(tiny_tied), "--out", str(tmp_path / "m"), "--no-verify",
                                   "--name", "vt", "--quant", "Q4_0"])
    assert res.exit_code == 0, res.output
    assert sorted(e.name for e in list_models(tmp_path / "m")) == ["vt-BF16", "vt-Q4_0", "vt-Q8_0"]
    assert (tmp_path / "m" / "vt-BF16.gguf").stat().st_mtime_ns == bf16_before
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")) == []
    res = CliRunner().invoke(app, ["convert", str(tiny_tied), "--out", str(tmp_path / "m"), "--quant", "Q2_X"])
    assert res.exit_code == 1 and "unknown quantization" in res.output
    res = CliRunner().invoke(app, ["convert", str(tmp_path / "nothing-here")])
    assert res.exit_code == 1 and "neither a folder nor a hub repository" in res.output
