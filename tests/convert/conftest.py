"""Fixtures for the conversion tests: tiny Qwen2 checkpoints with the REAL Qwen2.5-Math tokenizer.

The model is tiny (hidden 256, 2 layers) but the vocabulary is the real 151,936 rows, so
tokenizer parity and metadata are what VibeThinker gets. Everything is built once per session.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vibe_edge.convert.core import convert_folder
from vibe_edge.convert.synth import write_qwen2_checkpoint

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "qwen2.5-math-1.5b"

TINY = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


@pytest.fixture(scope="session")
def qwen_fixture() -> Path:
    if not (FIXTURE / "vocab.json").is_file():
        pytest.fail(f"missing tokenizer fixture at {FIXTURE}")
    return FIXTURE


def build_tiny(folder: Path, *, tied: bool = True, dtype: str = "bf16", n_shards: int = 1, seed: int = 0,
               **overrides) -> Path:
    return write_qwen2_checkpoint(folder, FIXTURE, overrides={**TINY, "tie_word_embeddings": tied, **overrides},
                                  dtype=dtype, n_shards=n_shards, seed=seed)


@pytest.fixture(scope="session")
def tiny_tied(tmp_path_factory, qwen_fixture) -> Path:
    """bf16, 2 shards with an index, tied embeddings (VibeThinker's layout)."""
    return build_tiny(tmp_path_factory.mktemp("ckpt") / "VibeThinker-tiny", tied=True, n_shards=2)


@pytest.fixture(scope="session")
def tiny_untied(tmp_path_factory, qwen_fixture) -> Path:
    """f16, single file, separate lm_head."""
    return build_tiny(tmp_path_factory.mktemp("ckpt") / "qwen-untied", tied=False, dtype="f16", seed=1)


@pytest.fixture(scope="session")
def tiny_tied_gguf(tmp_path_factory, tiny_tied) -> Path:
    out = tmp_path_factory.mktemp("gguf") / "tiny-BF16.gguf"
    convert_folder(tiny_tied, out)
    return out


def copy_checkpoint(src: Path, dst: Path) -> Path:
    """A private copy of a checkpoint, for tests that damage it."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        shutil.copyfile(item, dst / item.name)
    return dst


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="session")
def tiny_builder(qwen_fixture):
    """build_tiny(folder, tied=..., dtype=..., n_shards=..., **config overrides) -> folder."""
    return build_tiny


@pytest.fixture(scope="session")
def ckpt_tools():
    """Helpers for damaging checkpoint copies: (copy_checkpoint, edit_json)."""
    return copy_checkpoint, edit_json
