"""Checkpoints and runs that used to escape their folder or leave a broken registry: a shard
name outside the checkpoint, config numbers that size memory, two converts of one name, and a
SIGKILL in the middle (the quantizer child must die too, and no GGUF may lack its manifest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from vibe_edge.convert.core import convert_folder
from vibe_edge.convert.errors import CheckpointError
from vibe_edge.convert.reader import open_checkpoint
from vibe_edge.registry import list_models

REPO = Path(__file__).resolve().parents[2]
INDEX = "model.safetensors.index.json"


@pytest.fixture
def folder(tmp_path, tiny_tied, ckpt_tools):
    copy_checkpoint, _ = ckpt_tools
    return copy_checkpoint(tiny_tied, tmp_path / "ckpt")


@pytest.mark.parametrize("shard", ["../../../../etc/passwd", "/etc/passwd", "sub/../../outside.safetensors"])
def test_a_shard_outside_the_checkpoint_is_never_opened(folder, tmp_path, shard):
    index = json.loads((folder / INDEX).read_text())
    name = next(iter(index["weight_map"]))
    index["weight_map"][name] = shard
    (folder / INDEX).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="not a file inside the checkpoint folder") as exc:
        open_checkpoint(folder)
    assert repr(shard) in exc.value.message
    with pytest.raises(CheckpointError):
        convert_folder(folder, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


@pytest.mark.parametrize("layers, message", [
    (1_000_000_000, "not a plausible count"),  # used to grow memory without bound
    (1000, "num_hidden_layers=1000 but the checkpoint holds tensors for 2 layer"),
])
def test_config_numbers_are_checked_before_anything_is_sized(folder, tmp_path, ckpt_tools, layers, message):
    ckpt_tools[1](folder / "config.json", num_hidden_layers=layers)
    t0 = time.monotonic()
    with pytest.raises(CheckpointError, match=message):
        convert_folder(folder, tmp_path / "m.gguf")
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("key, value", [("hidden_size", "wide"), ("num_attention_heads", 0),
                                        ("vocab_size", -1), ("intermediate_size", True)])
def test_nonsense_config_numbers_are_refused(folder, tmp_path, ckpt_tools, key, value):
    ckpt_tools[1](folder / "config.json", **{key: value})
    with pytest.raises(CheckpointError, match=key):
        convert_folder(folder, tmp_path / "m.gguf")


def _convert(src: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "vibe_edge", "convert", str(src), "--out", str(out),
                             "--no-verify", "--name", "same", *extra], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_converts_of_the_same_name_do_not_both_win(tiny_tied, tmp_path):
    out = tmp_path / "models"
    procs = [_convert(tiny_tied, out) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(text for code, text in results if code == 1)
    assert "another `vibe-edge convert`" in loser or "already exists" in loser, loser
    assert [e.name for e in list_models(out)] == ["same-BF16"]


def _quantizer(parent: psutil.Process) -> psutil.Process | None:
    for child in parent.children(recursive=True):
        try:
            if "vibe_edge.engine.quantize" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            pass
    return None


def test_sigkill_mid_run_leaves_no_orphan_quantizer_and_no_gguf_without_manifest(tiny_tied, tmp_path):
    out = tmp_path / "models"
    proc = _convert(tiny_tied, out, "--quant", "Q8_0", "--keep-unquantized")
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 300
    child = None
    while child is None and time.monotonic() < deadline and proc.poll() is None:
        child = _quantizer(parent)
        time.sleep(0.02)
    if child is None:
        pytest.skip("the run finished before its quantizer could be seen")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs([child], timeout=5)
    for p in alive:
        p.kill()
    assert not alive, "the quantizer kept running after its parent was killed"
    for gguf in out.glob("*.gguf"):
        assert gguf.with_name(gguf.stem + ".manifest.json").is_file(), f"{gguf.name} has no manifest"
    rerun = _convert(tiny_tied, out, "--quant", "Q8_0", "--keep-unquantized")
    code, text = rerun.wait(timeout=600), rerun.stdout.read()
    assert code == 0, text
    assert sorted(e.name for e in list_models(out)) == ["same-BF16", "same-Q8_0"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
