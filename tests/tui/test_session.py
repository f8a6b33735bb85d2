"""The reply's state machine without Textual: the shared scripted engine's real event stream in,
real SQLite rows and view calls out."""

from __future__ import annotations

import subprocess
import sys
import threading

from doubles import Script, ScriptedEngine, answer, notice, reasoning, wait
from tui_helpers import RecordingView

from vibe_edge.tui.session import ReplySession
from vibe_edge.tui.store import COMPLETE, ERROR, STOPPED, STREAMING, HistoryStore
from vibe_edge.types import FinishReason, GenerationRequest


def _session(tmp_path, ends: list | None = None):
    store = HistoryStore(tmp_path / "chat.sqlite3")
    conv = store.create_conversation("t", preset="math", model="m")
    store.add_message(conv.id, "user", "q")
    message = store.add_message(conv.id, "assistant", "", status=STREAMING)
    view = RecordingView()
    session = ReplySession(store, conv.id, message.id, view,
                           on_end=lambda s, stopped: (ends if ends is not None else []).append(stopped))
    return store, message.id, view, session


def _submit(engine: ScriptedEngine):
    return engine.submit(GenerationRequest(messages=[{"role": "user", "content": "q"}]))


async def test_a_reply_streams_into_the_view_and_its_row(tmp_path):
    ends: list[bool] = []
    store, mid, view, session = _session(tmp_path, ends)
    engine = ScriptedEngine(Script([reasoning("Let me see. "), notice("thinking_budget", "closed"),
                                    answer("It is \\boxed{7}.")], prompt_tokens=9))
    await session.consume(_submit(engine))
    assert [c[0] for c in view.calls] == ["reasoning", "notice", "answer", "finish"]
    assert view.calls[-1] == ("finish", COMPLETE, "7", None)
    row = store.get_message(mid)
    assert (row.status, row.content, row.reasoning, row.boxed) == (COMPLETE, "It is \\boxed{7}.", "Let me see. ", "7")
    assert row.finish_reason == "stop" and row.notices == [{"code": "thinking_budget", "message": "closed"}]
    assert row.stats["prompt_tokens"] == 9 and session.shown and ends == [False]
    store.close()


async def test_the_reasoning_is_saved_before_the_answer_streams(tmp_path):
    store, mid, view, session = _session(tmp_path)
    gate = threading.Event()
    engine = ScriptedEngine(Script([reasoning("all the thinking"), answer("A"), wait(gate), answer("B")]))
    stream = _submit(engine)
    events = stream.__aiter__()
    while not session.answer:
        await session.handle(await events.__anext__())
    assert store.get_message(mid).reasoning == "all the thinking"
    assert store.get_message(mid).status == STREAMING
    gate.set()
    async for event in events:
        await session.handle(event)
    assert store.get_message(mid).content == "AB"
    store.close()


async def test_stop_saves_what_was_written_at_once_and_cancels(tmp_path):
    ends: list[bool] = []
    store, mid, view, session = _session(tmp_path, ends)
    gate = threading.Event()
    engine = ScriptedEngine(Script([answer("half"), wait(gate), answer(" rest")]))
    stream = _submit(engine)
    session.stream = stream
    events = stream.__aiter__()
    while not session.answer:
        await session.handle(await events.__anext__())
    session.stop()
    assert engine.handles[0].cancel_requested and session.done and session.shown
    row = store.get_message(mid)
    assert (row.status, row.content, row.finish_reason) == (STOPPED, "half", FinishReason.CANCELLED.value)
    assert view.calls[-1] == ("finish_now", STOPPED) and ends == [True]
    await session.finish(COMPLETE)  # a late end changes nothing
    assert store.get_message(mid).status == STOPPED
    store.close()


async def test_a_stream_that_ends_without_finished_is_an_error(tmp_path):
    store, mid, view, session = _session(tmp_path)

    class Broken:
        def cancel(self):
            pass

        async def __aiter__(self):
            yield await _anext_started()

    async def _anext_started():
        from vibe_edge.types import Started
        return Started("r", 0, 3, 0)

    await session.consume(Broken())
    row = store.get_message(mid)
    assert row.status == ERROR and "ended unexpectedly" in row.error
    store.close()


def test_the_session_keys_and_tui_config_load_without_textual():
    code = ("import sys; import vibe_edge.tui.session, vibe_edge.tui.keys, vibe_edge.tui.config, "
            "vibe_edge.tui.options; assert 'textual' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('textual'))")
    subprocess.run([sys.executable, "-c", code], check=True)
