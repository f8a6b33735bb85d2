"""`vibe-edge chat` refuses bad input before the TUI starts, with clear messages."""

from __future__ import annotations

from typer.testing import CliRunner

from vibe_edge.cli.app import app


def test_damaged_history_is_a_clear_error_and_left_alone(history_path):
    history_path.parent.mkdir(parents=True)
    history_path.write_bytes(b"garbage" * 100)
    result = CliRunner().invoke(app, ["chat", "--history", str(history_path), "--url", "http://x"])
    assert result.exit_code == 1
    assert "not an SQLite database" in _out(result) and "hint" in _out(result)
    assert history_path.read_bytes() == b"garbage" * 100


def test_url_and_socket_together_are_refused(tmp_path):
    result = CliRunner().invoke(app, ["chat", "--url", "http://x", "--socket", str(tmp_path / "s")])
    assert result.exit_code == 1 and "not both" in _out(result)


def test_unknown_preset_and_bad_keymap(tmp_path):
    result = CliRunner().invoke(app, ["chat", "--preset", "poetry", "--url", "http://x"])
    assert result.exit_code == 1 and "unknown preset" in _out(result)
    bad = tmp_path / "tui.toml"
    bad.write_text('[keys]\nlaunch_rockets = "ctrl+x"\n')
    result = CliRunner().invoke(app, ["chat", "--tui-config", str(bad), "--url", "http://x"])
    assert result.exit_code == 1 and "unknown action 'launch_rockets'" in _out(result)


def test_chat_help_lists_the_options():
    result = CliRunner().invoke(app, ["chat", "--help"])
    assert result.exit_code == 0
    for option in ("--model", "--preset", "--url", "--socket", "--history", "--thinking-budget",
                   "--slots"):
        assert option in _out(result)


def _out(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines
