"""tui.toml: the chat's own preferences (key bindings, theme), separate from config.toml.

    theme = "nord"
    sidebar = true          # conversation list shown at start (default: when 110+ columns)
    [keys]
    new_chat = "ctrl+n"     # action = key (several keys: "ctrl+n,f5")

Found at $VIBE_EDGE_TUI_CONFIG, else tui.toml in the user's config directory. Missing is fine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from vibe_edge import tomlfile
from vibe_edge.errors import SettingsError

__all__ = ["TUI_CONFIG_ENV_VAR", "TuiConfig", "default_tui_config_path", "load_tui_config"]

TUI_CONFIG_ENV_VAR = "VIBE_EDGE_TUI_CONFIG"


@dataclass(frozen=True)
class TuiConfig:
    keymap: dict[str, str] = field(default_factory=dict)
    theme: str | None = None
    sidebar: bool | None = None


def default_tui_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    named = env.get(TUI_CONFIG_ENV_VAR)
    if named:
        return Path(named).expanduser()
    return Path(platformdirs.user_config_dir("vibe-edge")) / "tui.toml"


def load_tui_config(path: Path | None = None, *, explicit: bool = False) -> TuiConfig:
    from vibe_edge.tui.app import KEYS

    if path is None:
        explicit = explicit or bool(os.environ.get(TUI_CONFIG_ENV_VAR))
        path = default_tui_config_path()
    try:
        data = tomlfile.loads(path.read_text(encoding="utf-8"), source=f"TUI config file {path}")
    except FileNotFoundError:
        if explicit:
            raise SettingsError(f"TUI config file {path} does not exist") from None
        return TuiConfig()
    except (OSError, UnicodeDecodeError, tomlfile.TOMLDecodeError) as exc:
        raise SettingsError(f"TUI config file {path} cannot be read: {exc}",
                            hint='it is TOML: theme = "nord", and a [keys] table') from exc
    actions = {a for a, *_ in KEYS}
    unknown = [k for k in data if k not in ("keys", "theme", "sidebar")]
    if unknown:
        raise SettingsError(f"TUI config file {path}: unknown setting {unknown[0]!r}",
                            hint="known: theme, sidebar, [keys]")
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise SettingsError(f"TUI config file {path}: [keys] must be a table of action = \"key\"")
    for action, key in keys.items():
        if action not in actions:
            raise SettingsError(f"TUI config file {path}: unknown action {action!r} in [keys]",
                                hint="actions: " + ", ".join(sorted(actions)))
        if not isinstance(key, str) or not key.strip():
            raise SettingsError(f"TUI config file {path}: [keys] {action} must be a key name "
                                "such as \"ctrl+n\" or \"f5\"")
    theme = data.get("theme")
    sidebar = data.get("sidebar")
    if theme is not None and not isinstance(theme, str):
        raise SettingsError(f"TUI config file {path}: theme must be a string")
    if sidebar is not None and not isinstance(sidebar, bool):
        raise SettingsError(f"TUI config file {path}: sidebar must be true or false")
    return TuiConfig({k: v.strip() for k, v in keys.items()}, theme, sidebar)
