"""The app under Pilot with a scripted backend: the reasoning block, Esc, notices, history
actions, the keys. Every test drives it with the keyboard only, at 80x24."""

from __future__ import annotations

import json
import threading

import pytest
from textual.widgets import Input, OptionList, Select

from vibe_edge.presets import get_preset
from vibe_edge.tui.app import KEYS, ChatApp
from vibe_edge.tui.options import ChatOptions
from vibe_edge.tui.screens import HelpScreen, SettingsScreen
from vibe_edge.tui.store import HistoryStore
from vibe_edge.tui.widgets import AssistantMessage, NoticeLine, PromptInput, StatusLine, UserMessage

from doubles import Script, answer, notice, pause, reasoning, wait
from tui_helpers import scripted, wait_for

SIZE = (80, 24)


def make_app(backend, history_path, tmp_path, **kw) -> ChatApp:
    return ChatApp(backend, history=history_path, export_dir=tmp_path / "exports", **kw)


async def send(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch if ch != " " else "space")
    await pilot.press("enter")


async def test_reasoning_streams_then_collapses_and_expands(history_path, tmp_path):
    gate = threading.Event()
    backend = scripted([reasoning("Let me compute 6 times 7 carefully. "), wait(gate),
                        answer("So the answer is $\\boxed{42}$.")])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "6*7?")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.state == "thinking")
        view = app.query_one(AssistantMessage)
        await pilot.pause(0.2)
        assert view.thinking is not None and not view.thinking.collapsed  # live, open
        assert "6 times 7" in view.thinking.text
        assert "thinking" in app.query_one(StatusLine).plain
        gate.set()
        await wait_for(pilot, lambda: app.reply.shown)
        assert view.thinking.collapsed  # collapsed once the answer began
        assert view.boxed is not None and view.boxed.boxed == "42"
        await pilot.press("ctrl+t")
        assert not view.thinking.collapsed
        await pilot.press("ctrl+t")
        assert view.thinking.collapsed
        [_, msg] = app.store.messages(app.conversation_id)
        assert msg.status == "complete" and msg.boxed == "42"
        assert msg.reasoning.startswith("Let me compute") and "42" in msg.content
        # The preset's prompts went to the backend; the stored prompt is the user's own.
        sent = backend.engine.requests[0].messages
        assert sent[0]["role"] == "system" and "boxed" in sent[-1]["content"]
        assert app.store.messages(app.conversation_id)[0].content == "6*7?"


async def test_escape_stops_at_once_and_keeps_the_partial_reply(history_path, tmp_path):
    gate = threading.Event()
    backend = scripted([reasoning("thinking hard "), answer("The first half"), wait(gate),
                        answer(" and the rest.")])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "question")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.answer_text == "The first half")
        await pilot.press("escape")
        assert app.reply.done
        assert backend.engine.handles[0].cancel_requested
        view = app.query_one(AssistantMessage)
        assert "stopped" in view.footer_text
        [_, msg] = app.store.messages(app.conversation_id)
        assert (msg.status, msg.content, msg.reasoning) == ("stopped", "The first half", "thinking hard ")
        await pilot.pause(0.1)
        assert "ready" in app.query_one(StatusLine).plain
        # The app takes a new prompt right away.
        gate.set()
        await send(pilot, "next")
        await wait_for(pilot, lambda: app.reply.shown and app.reply.message_id != msg.id)


async def test_budget_and_cjk_notices_are_shown_and_saved(history_path, tmp_path):
    backend = scripted([
        notice("cjk_prompt", "VibeThinker answers best in English."),
        reasoning("long thoughts " * 3),
        notice("thinking_budget", "Thinking budget reached: the engine closed the think block."),
        answer("Answer."),
    ])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "q")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        codes = [n.code for n in app.query(NoticeLine)]
        assert codes == ["cjk_prompt", "thinking_budget"]
        [_, msg] = app.store.messages(app.conversation_id)
        assert [n["code"] for n in msg.notices] == codes


@pytest.mark.parametrize("newline", ["ctrl+j", "shift+enter", "alt+enter"])
async def test_newline_keys_insert_a_newline_and_enter_sends(history_path, tmp_path, newline):
    # Whether a terminal sends Shift+Enter / Alt+Enter as such is up to the terminal; once it
    # does, they must not send the prompt.
    backend = scripted([answer("ok")])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", newline, "b")
        assert app.query_one(PromptInput).text == "a\nb"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        assert app.query_one(UserMessage).text == "a\nb"
        assert app.query_one(PromptInput).text == ""


async def test_regenerate_and_edit_last_prompt(history_path, tmp_path):
    backend = scripted([answer("first")], [answer("second")], [answer("third")])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.reply.shown and app.reply.answer_text == "second")
        msgs = app.store.messages(app.conversation_id)
        assert [(m.role, m.content) for m in msgs] == [("user", "hello"), ("assistant", "second")]
        assert len(app.query(AssistantMessage)) == 1
        await pilot.press("ctrl+g")
        prompt = app.query_one(PromptInput)
        assert prompt.text == "hello"
        await pilot.press("end", "!", "enter")
        await wait_for(pilot, lambda: app.reply.shown and app.reply.answer_text == "third")
        msgs = app.store.messages(app.conversation_id)
        assert [(m.role, m.content) for m in msgs] == [("user", "hello!"), ("assistant", "third")]
        assert backend.engine.requests[-1].messages[-1]["content"].startswith("hello!")


async def test_new_chat_rename_search_and_delete_by_keyboard(history_path, tmp_path):
    backend = scripted([answer("about primes")], [answer("about circles")])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "primes")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        first = app.conversation_id
        await pilot.press("ctrl+n")
        assert app.conversation_id is None
        await send(pilot, "circles")
        await wait_for(pilot, lambda: app.reply.shown and app.conversation_id != first)
        second = app.conversation_id
        # Rename (F2).
        await pilot.press("f2")
        await pilot.pause()
        field = app.screen.query_one(Input)
        field.value = ""
        await send(pilot, "Geometry")
        await pilot.pause()
        assert app.store.get_conversation(second).title == "Geometry"
        # Search (Ctrl+F) finds the first one by its answer text, Enter opens it.
        await pilot.press("ctrl+f")
        await pilot.pause()
        await send(pilot, "primes")
        await pilot.pause(0.1)
        assert app.conversation_id == first
        assert [u.text for u in app.query(UserMessage)] == ["primes"]
        # Delete (F8) asks first; "n" keeps it, "y" deletes it.
        await pilot.press("f8")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert app.store.get_conversation(first) is not None
        await pilot.press("f8")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.1)
        assert app.store.get_conversation(first) is None
        assert app.conversation_id == second
        # The conversation list opens with Ctrl+B and picks with the arrows and Enter.
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert isinstance(app.focused, OptionList)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.conversation_id == second


async def test_history_survives_a_restart(history_path, tmp_path):
    backend = scripted([reasoning("hmm "), answer("Paris.")])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Capital of France?")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
    app2 = make_app(scripted(), history_path, tmp_path)
    async with app2.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert [u.text for u in app2.query(UserMessage)] == ["Capital of France?"]
        [view] = app2.query(AssistantMessage)
        assert view.answer_text == "Paris."
        assert view.thinking is not None and view.thinking.collapsed and "hmm" in view.thinking.text


async def test_help_lists_every_key_and_keys_are_configurable(history_path, tmp_path):
    app = make_app(scripted([answer("x")]), history_path, tmp_path, keymap={"new_chat": "f5"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = dict((d, k) for k, d in app.screen.rows)
        for action, _key, _short, description, _show in KEYS:
            assert description in rows
        assert rows["New chat"] == "F5"
        assert any(k == "Ctrl+J" for k, _ in app.screen.rows)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await send(pilot, "q")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        await pilot.press("f5")
        assert app.conversation_id is None


async def test_settings_screen_changes_the_next_request(history_path, tmp_path):
    backend = scripted([answer("x")])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        app.screen.query_one("#temperature", Input).value = "0.3"
        app.screen.query_one("#thinking_budget", Input).value = "500"
        app.screen.query_one("#max_tokens", Input).value = "abc"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)  # a bad number keeps the screen open
        app.screen.query_one("#max_tokens", Input).value = "900"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, SettingsScreen)
        await send(pilot, "q")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        req = backend.engine.requests[0]
        assert req.sampling.temperature == 0.3 and req.max_tokens == 900
        assert req.reasoning.thinking_budget == 500
        assert "think 0/500" not in app.query_one(StatusLine).plain  # no reasoning in this script
    # Saved for the next session.
    store = HistoryStore(history_path)
    assert store.get_pref("options")["temperature"] == 0.3


async def test_export_writes_markdown_and_json(history_path, tmp_path):
    backend = scripted([reasoning("7 and 13"), answer("91 = 7 × 13, so $\\boxed{\\text{no}}$.")])
    app = make_app(backend, history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Is 91 prime?")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        await pilot.press("ctrl+s")
        await pilot.pause()
    md, js = app.last_export
    text = md.read_text()
    assert text.startswith("# Is 91 prime?")
    assert "## You\n\nIs 91 prime?" in text
    assert "<details><summary>Thinking</summary>\n\n7 and 13" in text
    assert "91 = 7 × 13" in text and "**Final answer:** $\\boxed{\\text{no}}$" in text
    data = json.loads(js.read_text())
    assert data["format"] == "vibe-edge-chat" and data["version"] == 1
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["reasoning"] == "7 and 13"
    assert data["messages"][1]["boxed"] == "\\text{no}"
    assert data["messages"][1]["status"] == "complete"


async def test_stopped_reply_exports_as_stopped(history_path, tmp_path):
    gate = threading.Event()
    app = make_app(scripted([answer("partial"), wait(gate)]), history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "q")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.answer_text == "partial")
        await pilot.press("escape", "ctrl+s")
        await pilot.pause()
    md, js = app.last_export
    assert "_[stopped by the user]_" in md.read_text()
    assert json.loads(js.read_text())["messages"][1]["status"] == "stopped"


async def test_copy_answer_and_code_block(history_path, tmp_path):
    body = "Two ways:\n\n```python\nprint(1)\n```\n\nand\n\n```python\nprint(2)\n```\n"
    app = make_app(scripted([answer(body)]), history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "code")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        await pilot.press("f3")
        assert app.clipboard == body
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.clipboard == "print(2)\n"


async def test_sending_while_busy_is_refused_not_lost(history_path, tmp_path):
    gate = threading.Event()
    app = make_app(scripted([answer("slow"), wait(gate), answer(" done")]), history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "one")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.answer_text == "slow")
        await send(pilot, "two")
        assert app.query_one(PromptInput).text == "two"  # kept in the input, not sent
        assert len(app.store.messages(app.conversation_id)) == 2
        gate.set()
        await wait_for(pilot, lambda: app.reply.shown)


async def test_backend_errors_are_shown_and_saved(history_path, tmp_path):
    from vibe_edge.errors import ContextLengthExceeded

    refused = Script(refuse=ContextLengthExceeded("the prompt is 5000 tokens but a slot holds 2048 tokens"))
    app = make_app(scripted(refused), history_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "q")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        [user, msg] = app.store.messages(app.conversation_id)
        assert user.content == "q"
        assert msg.status == "error" and "5000 tokens" in msg.error
        assert "error" in app.query_one(AssistantMessage).footer_text


async def test_slow_stream_is_saved_while_streaming(history_path, tmp_path):
    gate = threading.Event()
    app = make_app(scripted([reasoning("step one. "), pause(0.3), reasoning("step two. "), wait(gate)]),
                   history_path, tmp_path, save_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "q")
        await wait_for(pilot, lambda: "step two" in app.reply.reasoning_text)
        other = HistoryStore(history_path)  # a second connection sees the committed progress
        await wait_for(pilot, lambda: "step two" in other.messages(app.conversation_id)[1].reasoning)
        assert other.messages(app.conversation_id)[1].status == "streaming"
        other.close()
        await pilot.press("escape")


async def test_each_conversation_keeps_its_preset(history_path, tmp_path):
    backend = scripted([answer("a")])
    app = make_app(backend, history_path, tmp_path, options=ChatOptions(preset="math", temperature=0.2))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "primes")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        math_chat = app.conversation_id
        await pilot.press("ctrl+n")
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#preset", Select).value = "code"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await send(pilot, "sort a list")
        await wait_for(pilot, lambda: app.reply.shown and app.conversation_id != math_chat)
        code_chat = app.conversation_id
        # Back to the math chat (Ctrl+F search, Enter): its preset comes back with it, and the
        # user's own override (temperature) stays.
        await pilot.press("ctrl+f")
        await pilot.pause()
        await send(pilot, "primes")
        await wait_for(pilot, lambda: app.conversation_id == math_chat)
        assert app.options.preset == "math" and app.options.temperature == 0.2
        assert "math" in app.query_one(StatusLine).plain
        await send(pilot, "and twin primes?")
        await wait_for(pilot, lambda: len(backend.engine.requests) == 3 and app.reply.shown)
        system = [m["content"] for m in backend.engine.requests[2].messages if m["role"] == "system"]
        assert system == [get_preset("math").system_prompt]
        # Changing the preset in a conversation is remembered for it.
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#preset", Select).value = "general"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.store.get_conversation(math_chat).preset == "general"
        assert app.store.get_conversation(code_chat).preset == "code"


async def test_the_reopened_conversation_sets_the_preset_unless_one_was_asked_for(history_path, tmp_path):
    store = HistoryStore(history_path)
    conv = store.create_conversation("sorting", preset="code", model="x")
    store.add_message(conv.id, "user", "sort a list")
    store.close()
    app = make_app(scripted(), history_path, tmp_path, options=ChatOptions(preset="math"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.sub_title == "sorting")  # opened
        assert app.options.preset == "code"
    pinned = make_app(scripted([answer("x")]), history_path, tmp_path, options=ChatOptions(preset="math"),
                      pin_preset=True)  # `vibe-edge chat --preset math`
    async with pinned.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: pinned.sub_title == "sorting")
        assert pinned.options.preset == "math"
        # Editing the last prompt redraws the chat: the explicit preset still holds.
        await pilot.press("ctrl+g")
        await pilot.press("end", "!", "enter")
        await wait_for(pilot, lambda: pinned.reply is not None and pinned.reply.shown)
        assert pinned.options.preset == "math"
