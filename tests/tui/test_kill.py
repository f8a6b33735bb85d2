"""Killing the app mid-stream loses at most the in-flight tokens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tui_helpers import scripted, wait_for

from vibe_edge.tui.app import ChatApp
from vibe_edge.tui.store import HistoryStore
from vibe_edge.tui.widgets import AssistantMessage


async def test_sigkill_mid_stream_keeps_prompt_and_streamed_reasoning(history_path, tmp_path):
    history_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("kill_target.py")),
                             str(history_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        deadline = time.monotonic() + 60
        reasoning = ""
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if history_path.exists():
                store = HistoryStore(history_path)
                msgs = store.messages(1) if store.get_conversation(1) else []
                store.close()
                if len(msgs) == 2 and msgs[1].reasoning.count("step") >= 5:
                    reasoning = msgs[1].reasoning
                    break
            assert proc.poll() is None, proc.stderr.read().decode()
        assert reasoning, "the streamed reasoning never reached the database"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    store = HistoryStore(history_path, stale_after_s=0)  # as if opened a while later
    user, reply = store.messages(1)
    assert user.content == "A problem that takes forever"
    assert reply.status == "interrupted"
    assert reply.reasoning.startswith("step 0. step 1. ") and len(reply.reasoning) >= len(reasoning)
    store.close()

    app = ChatApp(scripted(), history=history_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.query(AssistantMessage)) == 1)
        view = app.query_one(AssistantMessage)
        assert "interrupted" in view.footer_text
        assert view.thinking is not None and "step 1." in view.thinking.text
