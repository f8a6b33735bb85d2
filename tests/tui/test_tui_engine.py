"""The real app on the real engine (the demo model, SmolLM2-135M, which does not think)."""

from __future__ import annotations

from tui_helpers import wait_for

from vibe_edge.tui.app import ChatApp
from vibe_edge.tui.backends import LocalBackend
from vibe_edge.tui.options import ChatOptions
from vibe_edge.tui.widgets import AssistantMessage, NoticeLine, StatusLine

SHORT = ChatOptions(preset="general", temperature=0.0, max_tokens=24)


async def send(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch if ch != " " else "space")
    await pilot.press("enter")


async def test_prompt_on_the_demo_model_shows_and_saves_the_answer(demo_engine, history_path, tmp_path):
    backend = LocalBackend(engine=demo_engine)
    app = ChatApp(backend, history=history_path, options=SHORT, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "Name a color.")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown, timeout=60)
        view = app.query_one(AssistantMessage)
        assert view.answer_text.strip()
        assert view.thinking is None  # the demo model does not think
        [user, msg] = app.store.messages(app.conversation_id)
        assert user.content == "Name a color."
        assert msg.status in ("complete", "length") and msg.content == view.answer_text
        assert msg.stats["answer_tokens"] > 0 and msg.stats["decode_tps"] > 0
        status = app.query_one(StatusLine).plain
        assert "tok/s" in status and "ctx" in status and "ready" in status


async def test_cjk_prompt_gets_the_engine_notice(demo_engine, history_path, tmp_path):
    app = ChatApp(LocalBackend(engine=demo_engine), history=history_path, options=SHORT,
                  export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        prompt = app.query_one("#prompt")
        prompt.text = "请计算一下二加二等于多少"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown, timeout=60)
        assert [n.code for n in app.query(NoticeLine)] == ["cjk_prompt"]
        assert "English" in app.query_one(NoticeLine).message


async def test_escape_cancels_the_engine_request(demo_engine, history_path, tmp_path):
    options = ChatOptions(preset="general", temperature=0.0, max_tokens=1500)
    app = ChatApp(LocalBackend(engine=demo_engine), history=history_path, options=options,
                  export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, "Write a long story about a dragon.")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.answer_tokens >= 5, timeout=60)
        await pilot.press("escape")
        [_, msg] = app.store.messages(app.conversation_id)
        assert msg.status == "stopped" and msg.content
        # The slot is freed: the engine serves the next request.
        await wait_for(pilot, lambda: demo_engine.status().busy_slots == 0, timeout=10)
