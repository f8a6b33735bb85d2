"""Snapshots of the main screens at 80x24 and a wide terminal (pytest-textual-snapshot).

Update after an intended change with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_textual_snapshot")

from tui_helpers import wait_for  # noqa: E402

from doubles import Script, ScriptedEngine, answer, notice, reasoning  # noqa: E402

from vibe_edge.tui.app import ChatApp  # noqa: E402
from vibe_edge.tui.backends import LocalBackend  # noqa: E402
from vibe_edge.tui.options import ChatOptions  # noqa: E402

ANSWER = (
    "Since $2^{10} = 1024 \\equiv 24 \\pmod{1000}$, we reduce step by step.\n\n"
    "```python\nprint(pow(2, 2024, 1000))\n```\n\n"
    "The last three digits are $\\boxed{216}$."
)


def make_app(tmp_path, history_name: str = "chat.sqlite3") -> ChatApp:
    backend = LocalBackend(engine=ScriptedEngine([Script([
        reasoning("We need 2^2024 mod 1000. Work mod 8 and mod 125, then combine. "),
        notice("thinking_budget", "Thinking budget reached: the engine closed the think block."),
        answer(ANSWER),
    ], prompt_tokens=10, cached_tokens=0)], chunk=64, fixed_stats=True, model_name="VibeThinker-1.5B"))
    return ChatApp(backend, history=tmp_path / history_name, export_dir=tmp_path,
                   options=ChatOptions(preset="math"), theme="textual-dark")


def _steady(app) -> None:
    app.query_one("#prompt").cursor_blink = False  # a blinking cursor makes snapshots flaky


async def _steady_before(pilot) -> None:
    _steady(pilot.app)
    await pilot.pause()


def _after_reply(prompt: str = "Last three digits of 2^2024?"):
    async def run_before(pilot) -> None:
        app = pilot.app
        _steady(app)
        app.query_one("#prompt").text = prompt
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        await pilot.pause(0.3)
        app.query_one("#prompt").focus()
        await pilot.pause()

    return run_before


def test_main_screen_80x24(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=_after_reply())


def test_main_screen_wide(snap_compare, tmp_path):
    app = make_app(tmp_path)
    app._sidebar_pref = True
    assert snap_compare(app, terminal_size=(130, 36), run_before=_after_reply())


def test_thinking_expanded_80x24(snap_compare, tmp_path):
    async def run_before(pilot) -> None:
        await _after_reply()(pilot)
        await pilot.press("ctrl+t")
        await pilot.pause(0.2)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_help_screen_80x24(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), press=["f1"],
                        run_before=_steady_before)


def test_settings_screen_80x24(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), press=["ctrl+o"],
                        run_before=_steady_before)


def test_empty_screen_wide(snap_compare, tmp_path):
    app = make_app(tmp_path)
    app._sidebar_pref = True
    assert snap_compare(app, terminal_size=(130, 36), run_before=_steady_before)
