"""Helpers shared by the TUI tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import asyncio

from vibe_edge.tui.backends import ScriptedBackend


async def wait_for(pilot, condition, timeout: float = 20.0, step: float = 0.02) -> None:
    """Let the app run until condition() holds (or fail after `timeout` seconds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await pilot.pause(step)


def scripted(*scripts, **kwargs) -> ScriptedBackend:
    return ScriptedBackend(list(scripts), **kwargs)
