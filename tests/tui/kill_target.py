"""Run by test_kill.py in a subprocess: the app streams a slow scripted reply until killed."""

from __future__ import annotations

import asyncio
import sys

from doubles import ScriptedEngine, reasoning

from vibe_edge.tui.app import ChatApp
from vibe_edge.tui.backends import LocalBackend


async def main(history: str) -> None:
    steps = [reasoning(f"step {i}. ") for i in range(100000)]
    backend = LocalBackend(engine=ScriptedEngine([steps], chunk=64, delay_s=0.01))
    app = ChatApp(backend, history=history,
                  save_interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one("#prompt").text = "A problem that takes forever"
        await pilot.press("enter")
        print("sent", flush=True)
        while True:
            await pilot.pause(0.1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
