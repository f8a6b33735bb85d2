"""Reading TOML on every Python vibe-edge supports: one import for the whole package.

tomllib is in the standard library from 3.11; Python 3.10 (JetPack 6 ships it) has the tomli
backport with the same API, a dependency on that Python (pyproject.toml). With neither, the
functions here raise SettingsError naming the fix, and nothing fails at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vibe_edge.errors import SettingsError

try:
    import tomllib as _toml
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml = None  # type: ignore[assignment]

__all__ = ["TOMLDecodeError", "loads"]


class _NoParser(Exception):
    """Stands in for TOMLDecodeError when no parser is installed (never raised)."""


TOMLDecodeError: type[Exception] = _toml.TOMLDecodeError if _toml is not None else _NoParser


def loads(text: str, *, source: Path | str) -> dict[str, Any]:
    """Parse TOML text read from `source`; raises TOMLDecodeError on bad syntax."""
    if _toml is None:
        raise SettingsError(f"cannot read {source}: this Python has no TOML parser",
                            hint="pip install tomli (or use Python 3.11+), or use VIBE_EDGE_* "
                                 "environment variables instead")
    return _toml.loads(text)
