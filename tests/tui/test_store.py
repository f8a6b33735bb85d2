"""The history store: WAL, schema version and migrations, refusing damaged or newer files."""

from __future__ import annotations

import sqlite3

import pytest

from vibe_edge.tui.store import (
    INTERRUPTED,
    SCHEMA_VERSION,
    STREAMING,
    HistoryError,
    HistoryStore,
)


def test_round_trip_and_wal(history_path):
    store = HistoryStore(history_path)
    conv = store.create_conversation("Primes", preset="math", model="vt")
    user = store.add_message(conv.id, "user", "Is 91 prime?")
    reply = store.add_message(conv.id, "assistant", "", status=STREAMING)
    store.update_message(reply.id, content="No: 7 × 13.", reasoning="91 = 7*13", status="complete",
                         boxed="No", stats={"decode_tps": 12.5}, notices=[{"code": "x", "message": "y"}])
    store.close()

    again = HistoryStore(history_path)
    assert again.schema_version == SCHEMA_VERSION
    assert again._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    [c] = again.list_conversations()
    assert (c.title, c.preset, c.model) == ("Primes", "math", "vt")
    msgs = again.messages(conv.id)
    assert [m.id for m in msgs] == [user.id, reply.id]
    assert msgs[1].content == "No: 7 × 13." and msgs[1].reasoning == "91 = 7*13"
    assert msgs[1].boxed == "No" and msgs[1].stats == {"decode_tps": 12.5}
    assert msgs[1].notices == [{"code": "x", "message": "y"}]


def test_streaming_rows_become_interrupted_on_reopen(history_path):
    store = HistoryStore(history_path)
    conv = store.create_conversation("t")
    msg = store.add_message(conv.id, "assistant", "partial", status=STREAMING)
    store.close()
    # Recently saved: may still be streaming in another window, so left alone.
    assert HistoryStore(history_path).get_message(msg.id).status == STREAMING
    assert HistoryStore(history_path, stale_after_s=0).get_message(msg.id).status == INTERRUPTED


def test_search_rename_delete(history_path):
    store = HistoryStore(history_path)
    a = store.create_conversation("Geometry")
    b = store.create_conversation("Number theory")
    store.add_message(a.id, "user", "area of a triangle")
    store.add_message(b.id, "assistant", "use Fermat's little theorem", reasoning="mod 7 cycles")
    assert [c.id for c in store.list_conversations("fermat")] == [b.id]
    assert [c.id for c in store.list_conversations("MOD 7")] == [b.id]
    assert [c.id for c in store.list_conversations("geometry")] == [a.id]
    assert store.list_conversations("100%") == []
    store.rename_conversation(a.id, "Triangles")
    assert store.get_conversation(a.id).title == "Triangles"
    store.delete_conversation(b.id)
    assert store.messages(b.id) == []  # cascade
    assert [c.id for c in store.list_conversations()] == [a.id]


def test_migrates_a_version_1_file(history_path):
    history_path.parent.mkdir(parents=True)
    db = sqlite3.connect(history_path)
    from vibe_edge.tui.store import MIGRATIONS

    MIGRATIONS[0](db)
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('old', 1, 1)")
    db.execute("INSERT INTO messages (conversation_id, role, content, created_at, updated_at) "
               "VALUES (1, 'user', 'hello', 1, 1)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = HistoryStore(history_path)
    assert store.schema_version == SCHEMA_VERSION
    [m] = store.messages(1)
    assert m.content == "hello" and m.notices == [] and m.error is None
    store.set_pref("theme", "nord")
    assert store.get_pref("theme") == "nord"


def test_newer_version_is_refused_and_not_touched(history_path):
    history_path.parent.mkdir(parents=True)
    db = sqlite3.connect(history_path)
    db.execute("CREATE TABLE future (x)")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    db.commit()
    db.close()
    before = history_path.read_bytes()
    with pytest.raises(HistoryError, match="newer vibe-edge"):
        HistoryStore(history_path)
    assert history_path.read_bytes() == before
    assert not history_path.with_name(history_path.name + "-wal").exists()


def test_garbage_file_is_refused_and_not_touched(history_path):
    history_path.parent.mkdir(parents=True)
    history_path.write_bytes(b"this is not a database at all\n" * 100)
    before = history_path.read_bytes()
    with pytest.raises(HistoryError, match="not an SQLite database") as info:
        HistoryStore(history_path)
    assert "it was not changed" in info.value.message and info.value.hint
    assert history_path.read_bytes() == before


def test_damaged_sqlite_is_refused_and_not_touched(history_path):
    store = HistoryStore(history_path)
    conv = store.create_conversation("x")
    for i in range(300):
        store.add_message(conv.id, "user", f"message {i} " * 40)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(history_path.read_bytes())
    for offset in range(4096 + 100, len(data), 4096):  # scribble over every page but the header
        data[offset:offset + 64] = b"\xff" * 64
    history_path.write_bytes(bytes(data))
    before = history_path.read_bytes()
    with pytest.raises(HistoryError, match="damaged|cannot be read"):
        HistoryStore(history_path)
    assert history_path.read_bytes() == before


def test_foreign_sqlite_file_is_refused(history_path):
    history_path.parent.mkdir(parents=True)
    db = sqlite3.connect(history_path)
    db.execute("CREATE TABLE photos (id)")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="not a vibe-edge chat history"):
        HistoryStore(history_path)
