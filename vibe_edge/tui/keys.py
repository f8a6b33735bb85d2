"""The chat's key map: every action, its default key and what it does. Plain data (no Textual),
so reading tui.toml (tui/config.py) checks action names without loading the UI."""

from __future__ import annotations

__all__ = ["ALWAYS_ALLOWED", "INPUT_KEYS", "KEYS", "pretty_key"]

# (action id, default key(s), short label, description, shown in the footer). Ids are what the
# keymap file ([keys] in tui.toml) names.
KEYS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("stop", "escape", "Stop", "Stop the reply (what was written is kept, marked stopped)", True),
    ("help", "f1", "Help", "Help: every key", True),
    ("new_chat", "ctrl+n", "New", "New chat", True),
    ("regenerate", "ctrl+r", "Regen", "Regenerate the last answer", True),
    ("edit_last", "ctrl+g", "Edit", "Edit and resend the last prompt (Esc cancels the edit)", False),
    ("toggle_thinking", "ctrl+t", "Thinking", "Expand or collapse the last Thinking block", False),
    ("toggle_sidebar", "ctrl+b", "Chats", "Show or hide the conversation list (and focus it)", True),
    ("search", "ctrl+f", "Search", "Search conversations (titles, prompts, answers, reasoning)", False),
    ("rename", "f2", "Rename", "Rename this conversation", False),
    ("delete", "f8", "Delete", "Delete this conversation (asks first)", False),
    ("export", "ctrl+s", "Export", "Export this conversation to Markdown and JSON", False),
    ("copy_answer", "f3", "Copy", "Copy the last answer to the clipboard (OSC 52 over SSH)", False),
    ("copy_code", "f4", "Copy code", "Copy a code block of the last answer", False),
    ("settings", "ctrl+o", "Settings", "Settings: preset, system prompt, sampling, budget, theme", True),
    ("scroll_up", "pageup", "Page up", "Scroll the chat up", False),
    ("scroll_down", "pagedown", "Page down", "Scroll the chat down", False),
    ("quit", "ctrl+q", "Quit", "Quit", True),
)
INPUT_KEYS: tuple[tuple[str, str], ...] = (
    ("enter", "Send the prompt"),
    ("ctrl+j", "New line in the prompt (also Shift+Enter / Alt+Enter where the terminal sends them)"),
    ("tab / shift+tab", "Move focus: prompt, chat, conversation list"),
    ("enter (on Thinking)", "Expand or collapse that Thinking block"),
    ("ctrl+p", "Command palette: every action, and themes"),
    ("up/down, enter", "In the conversation list: choose, open"),
)
ALWAYS_ALLOWED = frozenset({"quit", "help"})
"""Actions that work while a modal screen is open."""


def pretty_key(key: str) -> str:
    """"ctrl+n,f5" -> "Ctrl+N / F5"."""
    out = []
    for k in key.split(","):
        parts = k.strip().split("+")
        out.append("+".join(p.capitalize() if len(p) > 1 else p.upper() for p in parts))
    return " / ".join(out)
