"""The registry and --model against hostile or damaged files: manifests that point outside the
models directory, bytes that changed since registration, and things that are not files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vibe_edge.cli.app import app
from vibe_edge.errors import ModelFileError, ModelNotFound
from vibe_edge.modelfile import inspect_gguf
from vibe_edge.registry import (
    CHECKED_FILE,
    list_models,
    read_manifest,
    register_model,
    remove_model,
    resolve_model,
    verify_model_file,
)
from vibe_edge.runtime import prepare_model
from vibe_edge.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def layout(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    victim = tmp_path / "victim.gguf"
    victim.write_bytes(b"GGUF precious")
    return models, victim


@pytest.mark.parametrize("field, value", [
    ("file", "../victim.gguf"), ("file", "{victim}"), ("file", "sub/../../victim.gguf"),
    ("name", "../victim"), ("name", "/tmp/x"), ("file", ".."),
])
def test_a_manifest_pointing_outside_is_refused_as_damaged(layout, field, value):
    models, victim = layout
    manifest = {"name": "evil", "file": "evil.gguf", field: value.format(victim=victim)}
    (models / "evil.manifest.json").write_text(json.dumps(manifest))
    assert read_manifest(models / "evil.manifest.json") is None
    assert list_models(models) == []
    with pytest.raises(ModelNotFound):
        remove_model(models, "evil")
    res = CliRunner().invoke(app, ["models", "rm", "evil", "--models-dir", str(models), "--yes"])
    assert res.exit_code == 1
    assert victim.read_bytes() == b"GGUF precious"


def test_rm_of_a_model_with_a_damaged_manifest_stays_inside(layout):
    models, victim = layout
    (models / "evil.gguf").write_bytes(b"GGUF mine")
    (models / "evil.manifest.json").write_text(json.dumps({"name": "evil", "file": str(victim)}))
    [entry] = list_models(models)
    assert entry.path == models / "evil.gguf" and entry.manifest is None
    res = CliRunner().invoke(app, ["models", "rm", "evil", "--models-dir", str(models), "--yes"])
    assert res.exit_code == 0, res.output
    assert victim.exists() and not list(models.iterdir())


@pytest.fixture
def registered(tmp_path, demo_model):
    models = tmp_path / "models"
    models.mkdir()
    path = models / "demo-copy.gguf"
    shutil.copyfile(demo_model, path)
    register_model(models, path, quant="Q4_1")
    return models, path


def test_a_registered_model_is_hashed_once_then_trusted_by_size_and_mtime(registered):
    models, path = registered
    manifest = read_manifest(models / "demo-copy.manifest.json")
    assert verify_model_file(models, path, manifest) is True
    assert (models / CHECKED_FILE).is_file()
    assert verify_model_file(models, path, manifest) is False  # remembered: not hashed again
    assert [e.name for e in list_models(models)] == ["demo-copy"]  # the cache file is not a model


def test_changed_bytes_are_a_clear_error_when_the_model_is_loaded(registered):
    models, path = registered
    settings = Settings(models_dir=models)
    prepare_model(settings, model="demo-copy")
    with open(path, "r+b") as fh:  # same size, one byte different
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(ModelFileError) as exc:
        prepare_model(settings, model="demo-copy")
    assert "sha256" in exc.value.message and "does not match its manifest" in exc.value.message
    assert "--force" in exc.value.hint and "demo-copy.manifest.json" in exc.value.hint
    with open(path, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelFileError, match="bytes but its manifest records"):
        prepare_model(settings, model="demo-copy")


def test_a_fifo_or_device_as_model_is_refused_at_once(tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="named pipe"):
        inspect_gguf(fifo)
    with pytest.raises(ModelFileError, match="character device") as exc:
        inspect_gguf("/dev/zero")
    assert "empty" not in exc.value.message
    assert resolve_model(str(fifo), tmp_path).path == fifo.resolve()  # found, then refused on inspection
    for command in (["run", "--model", str(fifo), "hi"], ["serve", "--model", "/dev/zero", "--port", "0"]):
        proc = subprocess.run([sys.executable, "-m", "vibe_edge", *command], cwd=REPO, capture_output=True,
                              text=True, timeout=60)  # used to hang forever on the FIFO
        assert proc.returncode == 1
        assert "not a model file" in proc.stdout + proc.stderr
