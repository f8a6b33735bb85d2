"""Helpers shared by the TUI tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import asyncio

from doubles import ScriptedEngine, answer

from vibe_edge.tui.backends import LocalBackend


async def wait_for(pilot, condition, timeout: float = 20.0, step: float = 0.02) -> None:
    """Let the app run until condition() holds (or fail after `timeout` seconds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await pilot.pause(step)


def scripted(*scripts, chunk: int = 8, **kwargs) -> LocalBackend:
    """The chat's backend over the shared scripted engine: one script per reply (the last one
    repeats), text cut into `chunk`-character deltas. The engine is `backend.engine`."""
    engine = ScriptedEngine(list(scripts) or [[answer("Hello from the scripted engine.")]],
                            chunk=chunk, **kwargs)
    return LocalBackend(engine=engine)
