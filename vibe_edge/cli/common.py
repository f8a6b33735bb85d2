"""What every command shares: error printing, the engine options, settings from flags."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from vibe_edge.errors import VibeEdgeError
from vibe_edge.settings import Settings, load_settings

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# Engine options, shared by run, bench, serve and chat. None means "from settings / the plan".
ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="A .gguf path, a name from `vibe-edge models`, or `demo`.")]
SlotsOpt = Annotated[Optional[int], typer.Option(
    "--slots", help="Parallel sequences (users served at once). Default: from the hardware plan.")]
CtxOpt = Annotated[Optional[int], typer.Option(
    "--ctx", help="Context tokens per slot (prompt + thinking + answer). Default: the plan's.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", "-t", help="CPU threads. Default: usable physical cores.")]
GpuLayersOpt = Annotated[Optional[int], typer.Option(
    "--gpu-layers", "-ngl", help="Layers offloaded to the GPU (-1 all, 0 none). Default: the plan's.")]
KvTypeOpt = Annotated[Optional[str], typer.Option(
    "--kv-type", help="KV cache type: f16, q8_0 or q4_0. Default: the plan's.")]
SpecOpt = Annotated[Optional[bool], typer.Option(
    "--spec/--no-spec", help="Speculative decoding from the context's own n-grams (same output, "
                             "faster where text repeats, as in code edits). Default: on.")]


def settings_from_flags(**flags: Any) -> Settings:
    """Settings with CLI flags applied on top of file and environment (None flags ignored)."""
    names = {"slots": "slots", "ctx": "ctx_per_slot", "threads": "threads",
             "gpu_layers": "gpu_layers", "kv_type": "kv_type"}
    overrides = {names.get(k, k): v for k, v in flags.items() if v is not None}
    return load_settings(overrides=overrides)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a VibeEdgeError into a clear message and exit status 1 (no traceback)."""
    try:
        yield
    except VibeEdgeError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}")
        if exc.hint:
            err_console.print(f"  [yellow]hint:[/] {exc.hint}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None


def notify(message: str) -> None:
    err_console.print(f"[cyan]note:[/] {message}")


def is_tty() -> bool:
    return sys.stdout.isatty()
