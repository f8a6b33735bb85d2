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


class RecordingView:
    """A ReplyView that writes down what it was asked to draw (samples included: a reply drawn
    as several samples also calls the sample methods)."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.lines: dict[int, str] = {}
        self.sample_text: dict[int, str] = {}

    async def add_reasoning(self, text):
        self.calls.append(("reasoning", text))

    async def add_answer(self, text):
        self.calls.append(("answer", text))

    async def add_notice(self, code, message):
        self.calls.append(("notice", code))

    async def finish(self, status, *, boxed=None, stats=None, error=None, reasoning_tokens=None):
        self.calls.append(("finish", status, boxed, error))

    def finish_now(self, status):
        self.calls.append(("finish_now", status))

    def flush(self):
        pass

    async def start_samples(self, n):
        self.calls.append(("start_samples", n))

    def add_sample_text(self, sample, channel, text):
        self.sample_text[sample] = self.sample_text.get(sample, "") + text

    def update_sample(self, sample, line):
        self.lines[sample] = line

    async def show_winner(self, *, reasoning, answer, boxed, tally, reasoning_tokens=None):
        self.calls.append(("winner", answer, boxed, tally))
