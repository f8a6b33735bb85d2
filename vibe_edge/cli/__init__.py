"""The `vibe-edge` command line: thin typer commands over the library.

Each command group lives in its own module with a `register(app)` function; app.py wires them.
"""

from vibe_edge.cli.app import app, main

__all__ = ["app", "main"]
