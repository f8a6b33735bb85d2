"""Bad input: each refused with a clear message, and no file (final or temporary) left behind."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vibe_edge.convert.core import convert_folder
from vibe_edge.convert.errors import (
    CheckpointError,
    ConversionInterrupted,
    InsufficientDiskSpace,
    TokenizerError,
    UnsupportedArchitecture,
)

REPO = Path(__file__).resolve().parents[2]


def _nothing_left(out_dir: Path) -> None:
    assert sorted(p.name for p in out_dir.iterdir()) == [], "a partial output was left behind"


@pytest.fixture
def broken(tmp_path, tiny_tied, ckpt_tools):
    """A private copy of the sharded tiny checkpoint, and an empty output folder."""
    copy_checkpoint, _ = ckpt_tools
    out = tmp_path / "out"
    out.mkdir()
    return copy_checkpoint(tiny_tied, tmp_path / "ckpt"), out


def test_unsupported_architecture(broken, ckpt_tools):
    folder, out = broken
    ckpt_tools[1](folder / "config.json", architectures=["GPTNeoXForCausalLM"])
    with pytest.raises(UnsupportedArchitecture) as exc:
        convert_folder(folder, out / "m.gguf")
    assert "GPTNeoXForCausalLM" in exc.value.message
    assert "Qwen2ForCausalLM" in exc.value.message and "LlamaForCausalLM" in exc.value.message
    _nothing_left(out)


def test_missing_shard(broken):
    folder, out = broken
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing shard.*model-00002-of-00002"):
        convert_folder(folder, out / "m.gguf")
    _nothing_left(out)


def test_corrupt_safetensors_header(broken):
    folder, out = broken
    shard = folder / "model-00001-of-00002.safetensors"
    with open(shard, "r+b") as fh:
        fh.write(struct.pack("<Q", 1 << 40))
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        convert_folder(folder, out / "m.gguf")
    with open(shard, "r+b") as fh:  # right length, broken JSON
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.write(b"{\"x" + b"\x00" * 5)
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        convert_folder(folder, out / "m.gguf")
    _nothing_left(out)


def test_truncated_shard(broken):
    folder, out = broken
    shard = folder / "model-00002-of-00002.safetensors"
    os.truncate(shard, shard.stat().st_size - 1000)
    with pytest.raises(CheckpointError, match="byte range"):
        convert_folder(folder, out / "m.gguf")
    _nothing_left(out)


def test_tensor_with_wrong_shape(broken, ckpt_tools):
    folder, out = broken
    ckpt_tools[1](folder / "config.json", intermediate_size=640)
    with pytest.raises(CheckpointError, match=r"mlp\.\w+_proj\.weight' has shape .* expected"):
        convert_folder(folder, out / "m.gguf")
    _nothing_left(out)


def test_vocab_size_not_matching_embeddings(broken, ckpt_tools):
    folder, out = broken
    ckpt_tools[1](folder / "config.json", vocab_size=151000)
    with pytest.raises(CheckpointError, match="vocab size mismatch.*151000.*151936"):
        convert_folder(folder, out / "m.gguf")
    _nothing_left(out)


def test_missing_tokenizer(broken):
    folder, out = broken
    (folder / "vocab.json").unlink()
    (folder / "merges.txt").unlink()
    with pytest.raises(TokenizerError, match="no tokenizer"):
        convert_folder(folder, out / "m.gguf")
    _nothing_left(out)


def test_unknown_tokenizer_class_refused(broken, ckpt_tools):
    folder, out = broken
    ckpt_tools[1](folder / "tokenizer_config.json", tokenizer_class="MysteryTokenizer")
    with pytest.raises(TokenizerError, match="cannot identify the pre-tokenizer") as exc:
        convert_folder(folder, out / "m.gguf")
    assert "never guesses" in exc.value.hint
    _nothing_left(out)


def test_unidentifiable_pre_tokenizer_refused(broken):
    """Same vocabulary, GPT-2's pre-tokenizer (digits grouped): the hash is unknown, so refused."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    folder, out = broken
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    tok = Tokenizer(BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(folder / "tokenizer.json"))
    with pytest.raises(TokenizerError, match="could not be identified") as exc:
        convert_folder(folder, out / "m.gguf")
    assert "refused rather than guessed" in exc.value.hint
    _nothing_left(out)


def test_no_disk_space_checked_before_writing(tiny_tied, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InsufficientDiskSpace, match="not enough disk space"):
        convert_folder(tiny_tied, out / "m.gguf", free_space_margin=1 << 60)
    _nothing_left(out)


def test_disk_full_while_writing_leaves_nothing(tiny_tied, tmp_path):
    """A write that fails midway (file-size limit: EFBIG, as a full disk gives ENOSPC) is cleaned up."""
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20 << 20, 20 << 20))\n"
        "from vibe_edge.convert.core import convert_folder\n"
        "from vibe_edge.convert.errors import InsufficientDiskSpace\n"
        "try:\n"
        f"    convert_folder(Path({str(tiny_tied)!r}), Path({str(out / 'm.gguf')!r}))\n"
        "except InsufficientDiskSpace as e:\n"
        "    print('DISKFULL', e.message); sys.exit(7)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 7, proc.stderr[-2000:]
    assert "filled up" in proc.stdout
    _nothing_left(out)


def test_interrupted_write_leaves_nothing(tiny_tied, tmp_path):
    out = tmp_path / "out"
    out.mkdir()

    def ctrl_c_midway(stage: str, done: int, total: int) -> None:
        if done > total // 3:
            raise KeyboardInterrupt

    with pytest.raises(ConversionInterrupted, match="no partial file"):
        convert_folder(tiny_tied, out / "m.gguf", progress=ctrl_c_midway, chunk_bytes=1 << 20)
    _nothing_left(out)


def test_sigint_to_cli_leaves_nothing(tiny_tied, tmp_path):
    """A real Ctrl-C (SIGINT) to `vibe-edge convert` while it works: exit non-zero, no file."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "vibe_edge", "convert", str(tiny_tied), "--out", str(out),
                             "--no-verify", "--name", "x"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.is_dir() and any(out.iterdir())):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the conversion finished before the signal arrived")
    assert proc.returncode != 0
    assert "interrupted" in err.lower()
    assert not list(out.glob("*.gguf")) and not list(out.glob(".vibe-edge-tmp*"))


def test_stale_temp_files_of_killed_runs_are_removed(tmp_path):
    """SIGKILL gives no chance to clean up: the next run removes temp files of dead processes."""
    from vibe_edge.convert.atomic import TMP_PREFIX, remove_stale_temp_files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{TMP_PREFIX}m.gguf.{dead.pid}"
    live = tmp_path / f"{TMP_PREFIX}m.gguf.{os.getpid()}"
    stale.write_bytes(b"partial")
    live.write_bytes(b"in progress")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert live.exists() and not stale.exists()
