"""The typer app. Commands plug in through `register(app)` in their own modules."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="vibe-edge",
    help="Run VibeThinker-1.5B offline: convert, serve, chat, on CPU or CUDA.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One module per command group; each defines register(app).
COMMAND_MODULES = (
    "vibe_edge.cli.doctor",
    "vibe_edge.cli.run",
    "vibe_edge.cli.bench",
    "vibe_edge.cli.convert",
    "vibe_edge.cli.models",
    "vibe_edge.cli.serve",
    "vibe_edge.cli.chat",
    "vibe_edge.cli.eval",
    "vibe_edge.cli.deploy",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()
