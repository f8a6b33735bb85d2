"""The chat history failing under a running chat (here: the disk fills up, as a file-size limit
makes it): the app says what happened, keeps the unsaved message on screen, and exits 1.

The app runs under Pilot in a child process, because the file-size limit applies to a whole
process and must not touch the test runner's own files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vibe_edge.tui.store import HistoryError, HistoryStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

DRIVER = r'''
import asyncio, json, os, resource, signal, sys
from pathlib import Path
sys.path[:0] = [sys.argv[2], str(Path(sys.argv[2]).parent)]  # tests/tui, and tests/ (doubles)
from tui_helpers import scripted, wait_for
from vibe_edge.tui.app import ChatApp
from doubles import answer
from vibe_edge.tui.widgets import PromptInput

async def main(history: Path) -> None:
    app = ChatApp(scripted([answer("The first answer.")], [answer("never shown")]), history=history,
                  export_dir=history.parent)
    out = {}
    async with app.run_test(size=(80, 24)) as pilot:
        for ch in "hello":
            await pilot.press(ch)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        # The disk is full from now on: no database file may grow.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        sizes = [os.path.getsize(p) for p in (history, Path(f"{history}-wal")) if p.exists()]
        resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes) + 64, hard))
        try:
            prompt = app.query_one(PromptInput)
            for ch in "unsaved":
                await pilot.press(ch)
            prompt.insert(" question " * 400)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.history_error is not None)
            await pilot.pause(0.3)
            out["prompt"] = prompt.text
            out["shown"] = str(app.query_one("#history-error").render())
            await pilot.press("enter")  # sending again is refused, the text stays
            await pilot.pause(0.2)
            out["prompt_after_retry"] = prompt.text
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        await pilot.press("ctrl+q")
    out["return_code"] = app.return_code
    out["unsaved"] = app.unsaved_text
    print("RESULT " + json.dumps(out))

asyncio.run(main(Path(sys.argv[1])))
'''


def test_a_full_disk_mid_chat_keeps_the_message_and_exits_1(tmp_path):
    history = tmp_path / "chat.sqlite3"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.run([sys.executable, str(driver), str(history), str(HERE)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    out = json.loads(line[7:])
    assert out["return_code"] == 1
    assert out["prompt"].startswith("unsaved question") and out["prompt"] == out["prompt_after_retry"]
    assert out["unsaved"].startswith("unsaved question")
    assert "chat history failed" in out["shown"] and "not saved" in out["shown"]
    assert "Traceback" not in proc.stdout + proc.stderr
    # What was saved before the failure is still there.
    store = HistoryStore(history)
    try:
        [conv] = store.list_conversations()
        assert [m.content for m in store.messages(conv.id)] == ["hello", "The first answer."]
    finally:
        store.close()


def test_store_failures_are_history_errors(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    conv = store.create_conversation("t")
    store._db.raw.close()  # the connection is gone under the store, as after an I/O error
    try:
        store.add_message(conv.id, "user", "x")
    except HistoryError as exc:
        assert "cannot be used any more" in exc.message and exc.hint
    else:
        raise AssertionError("no HistoryError")
