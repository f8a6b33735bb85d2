"""`vibe-edge chat`: a Textual chat for reasoning models, with SQLite history.

Importing this package does not import Textual; `ChatApp` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChatApp"]


def __getattr__(name: str) -> Any:
    if name == "ChatApp":
        from vibe_edge.tui.app import ChatApp

        return ChatApp
    raise AttributeError(name)
