"""Chat history in SQLite: conversations and their messages, nothing ever silently lost.

The database lives in the user's data directory (`chat.sqlite3`), journal in WAL mode so a
reader never blocks the writer and a crash leaves the last committed write intact. Every write
is its own transaction, committed at once: the user's message is on disk before generation
starts, and an assistant message is rewritten as it streams (status "streaming"), then finished
as "complete", "stopped", "length" or "error". A message still marked "streaming" and not saved
for STALE_AFTER_S when the database is next opened was cut off by a crash or a kill; it
becomes "interrupted" (a recent one may be streaming in another window, and is left alone).

Schema versions live in `PRAGMA user_version`. Opening runs the migrations from the file's
version up to SCHEMA_VERSION, in one transaction each. A file that is not SQLite, is damaged,
or carries a newer version than this code knows raises HistoryError with a clear message, and
the file is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from vibe_edge.errors import VibeEdgeError

__all__ = [
    "HISTORY_ENV_VAR",
    "HISTORY_FILE",
    "SCHEMA_VERSION",
    "Conversation",
    "HistoryError",
    "HistoryStore",
    "StoredMessage",
    "default_history_path",
]

HISTORY_FILE = "chat.sqlite3"
HISTORY_ENV_VAR = "VIBE_EDGE_HISTORY"
SCHEMA_VERSION = 3

# Message statuses. "streaming" only while a reply is being generated.
STREAMING, COMPLETE, STOPPED, LENGTH, ERROR, INTERRUPTED = (
    "streaming", "complete", "stopped", "length", "error", "interrupted")
STATUSES = (STREAMING, COMPLETE, STOPPED, LENGTH, ERROR, INTERRUPTED)
# A streaming reply is re-saved every second or so; one silent for this long was cut off.
STALE_AFTER_S = 30.0


class HistoryError(VibeEdgeError):
    """The history database cannot be used (damaged, newer version, unreadable)."""

    status, type, code = 500, "server_error", "history_unavailable"


def default_history_path(env: dict[str, str] | None = None) -> Path:
    """$VIBE_EDGE_HISTORY if set, else chat.sqlite3 in the user's data directory."""
    import os

    env = os.environ if env is None else env  # type: ignore[assignment]
    named = env.get(HISTORY_ENV_VAR)
    if named:
        return Path(named).expanduser()
    return Path(platformdirs.user_data_dir("vibe-edge")) / HISTORY_FILE


@dataclass
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    preset: str | None = None
    model: str | None = None
    samples: int | None = None  # the samples option it was held in (None: before there was one)


@dataclass
class StoredMessage:
    id: int
    conversation_id: int
    role: str                     # "user" | "assistant" | "system"
    content: str                  # the prompt, or the assistant's answer
    reasoning: str = ""
    status: str = COMPLETE
    finish_reason: str | None = None
    boxed: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    notices: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    # A reply drawn as several samples: {"vote": VoteOutcome.to_dict() or None, "samples":
    # [{"answer", "reasoning", "status", "finish_reason", "boxed", "vote_answer", "stats"}, ...]}
    # (content and reasoning above are then the winner's). None for a single-sample reply.
    samples: dict[str, Any] | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


# -- migrations -----------------------------------------------------------------------------------
# Each entry takes the database from version i to i + 1. Never edit a released one; append.

def _v1(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            preset TEXT,
            model TEXT
        )""")
    db.execute("""
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            reasoning TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'complete',
            finish_reason TEXT,
            boxed TEXT,
            stats TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""")
    db.execute("CREATE INDEX messages_by_conversation ON messages(conversation_id, id)")
    db.execute("CREATE INDEX conversations_by_update ON conversations(updated_at)")


def _v2(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE messages ADD COLUMN notices TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE messages ADD COLUMN error TEXT")
    db.execute("CREATE TABLE prefs (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _v3(db: sqlite3.Connection) -> None:
    # Self-consistency: a conversation's samples option, and a reply's samples and vote (JSON).
    db.execute("ALTER TABLE conversations ADD COLUMN samples INTEGER")
    db.execute("ALTER TABLE messages ADD COLUMN samples TEXT")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3)
assert len(MIGRATIONS) == SCHEMA_VERSION


class _Guarded:
    """The open connection, with every failure after opening (a file truncated or replaced
    under us, a full disk, an I/O error) raised as HistoryError saying what happened."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.raw = db
        self.path = path

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, args)
        except sqlite3.Error as exc:
            raise _write_failed(self.path, exc) from exc

    def close(self) -> None:
        self.raw.close()


def _write_failed(path: Path, exc: sqlite3.Error) -> HistoryError:
    hint = ("the disk is full: free some space, then restart the chat" if "full" in str(exc).lower()
            else "the disk may be full, or the file was changed or damaged while the chat had it "
                 "open: free some space, or move the file away (keep it for recovery) and "
                 "restart, or use another file with --history")
    return HistoryError(f"the chat history {path} cannot be used any more ({exc})", hint=hint)


class HistoryStore:
    """One SQLite file of conversations. Use from one thread (the app's event loop).

    Every method raises HistoryError when the database fails under it (the app keeps what the
    user typed on screen and exits non-zero)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time,
                 stale_after_s: float = STALE_AFTER_S):
        self.path = Path(path).expanduser()
        self._clock = clock
        self.stale_after_s = stale_after_s
        self._db = _Guarded(self._open(), self.path)

    # -- opening ----------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        path = self.path
        if path.exists() and not path.is_file():
            raise HistoryError(f"chat history {path} is not a file",
                               hint=f"move it away, or point {HISTORY_ENV_VAR} / --history elsewhere")
        if path.is_file():
            _check_header(path)
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"cannot create the history directory {path.parent}: "
                                   f"{exc.strerror or exc}") from exc
        try:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open chat history {path}: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"chat history {path} was written by a newer vibe-edge (schema version "
                    f"{version}; this version knows up to {SCHEMA_VERSION}); it was not changed",
                    hint="upgrade vibe-edge, or use another history file with --history")
            if version < 0:
                raise HistoryError(f"chat history {path} has an invalid schema version {version}; "
                                   "it was not changed",
                                   hint="move the file away, or use another one with --history")
            ok = db.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise HistoryError(f"chat history {path} is damaged ({ok}); it was not changed",
                                   hint="move the file away to start fresh (keep it for recovery), "
                                        "or use another one with --history")
            if version == 0 and _has_foreign_tables(db):
                raise HistoryError(
                    f"{path} is an SQLite database but not a vibe-edge chat history; it was not changed",
                    hint="use another file with --history")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                db.execute("BEGIN IMMEDIATE")
                try:
                    MIGRATIONS[target - 1](db)
                    db.execute(f"PRAGMA user_version={target}")
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            # Replies cut off by a crash or kill: keep their text, say what happened. A reply
            # saved recently may still be streaming in another window: leave that one alone.
            db.execute("UPDATE messages SET status=? WHERE status=? AND updated_at<?",
                       (INTERRUPTED, STREAMING, self._clock() - self.stale_after_s))
        except sqlite3.DatabaseError as exc:
            db.close()
            raise HistoryError(f"chat history {path} cannot be read ({exc}); it was not changed",
                               hint="move the file away to start fresh (keep it for recovery), "
                                    "or use another one with --history") from exc
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    # -- conversations ----------------------------------------------------------------------------
    def create_conversation(self, title: str, *, preset: str | None = None,
                            model: str | None = None, samples: int | None = None) -> Conversation:
        now = self._clock()
        cur = self._db.execute(
            "INSERT INTO conversations (title, created_at, updated_at, preset, model, samples) "
            "VALUES (?,?,?,?,?,?)", (title, now, now, preset, model, samples))
        return Conversation(int(cur.lastrowid), title, now, now, preset, model, samples)

    def get_conversation(self, conversation_id: int) -> Conversation | None:
        row = self._db.execute("SELECT * FROM conversations WHERE id=?", (conversation_id,)).fetchone()
        return _conversation(row) if row else None

    def list_conversations(self, query: str | None = None) -> list[Conversation]:
        """Most recently used first. `query` matches titles and message text (case-insensitive)."""
        if not query:
            rows = self._db.execute(
                "SELECT * FROM conversations ORDER BY updated_at DESC, id DESC").fetchall()
        else:
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self._db.execute(
                """SELECT * FROM conversations c WHERE c.title LIKE ?1 ESCAPE '\\'
                   OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id
                              AND (m.content LIKE ?1 ESCAPE '\\' OR m.reasoning LIKE ?1 ESCAPE '\\'))
                   ORDER BY updated_at DESC, id DESC""", (like,)).fetchall()
        return [_conversation(r) for r in rows]

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self._db.execute("UPDATE conversations SET title=? WHERE id=?", (title, conversation_id))

    def update_conversation(self, conversation_id: int, **values: Any) -> None:
        allowed = {"preset", "model", "title", "samples"}
        for key, value in values.items():
            if key not in allowed:
                raise ValueError(f"cannot update {key}")
            self._db.execute(f"UPDATE conversations SET {key}=? WHERE id=?", (value, conversation_id))

    def touch(self, conversation_id: int) -> None:
        self._db.execute("UPDATE conversations SET updated_at=? WHERE id=?",
                         (self._clock(), conversation_id))

    def delete_conversation(self, conversation_id: int) -> None:
        self._db.execute("DELETE FROM conversations WHERE id=?", (conversation_id,))

    # -- messages ---------------------------------------------------------------------------------
    def add_message(self, conversation_id: int, role: str, content: str, *,
                    status: str = COMPLETE, reasoning: str = "") -> StoredMessage:
        now = self._clock()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(
                """INSERT INTO messages (conversation_id, role, content, reasoning, status,
                   created_at, updated_at) VALUES (?,?,?,?,?,?,?)""",
                (conversation_id, role, content, reasoning, status, now, now))
            self._db.execute("UPDATE conversations SET updated_at=? WHERE id=?", (now, conversation_id))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.raw.in_transaction:  # SQLite may have rolled back itself (I/O error)
                with contextlib.suppress(sqlite3.Error):
                    self._db.raw.execute("ROLLBACK")
            raise
        return StoredMessage(int(cur.lastrowid), conversation_id, role, content, reasoning, status,
                             created_at=now, updated_at=now)

    def update_message(self, message_id: int, *, content: str | None = None,
                       reasoning: str | None = None, status: str | None = None,
                       finish_reason: str | None = None, boxed: str | None = None,
                       stats: dict[str, Any] | None = None,
                       notices: list[dict[str, str]] | None = None,
                       error: str | None = None, samples: dict[str, Any] | None = None) -> None:
        sets: list[str] = ["updated_at=?"]
        args: list[Any] = [self._clock()]
        for column, value in (("content", content), ("reasoning", reasoning), ("status", status),
                              ("finish_reason", finish_reason), ("boxed", boxed), ("error", error)):
            if value is not None:
                sets.append(f"{column}=?")
                args.append(value)
        if stats is not None:
            sets.append("stats=?")
            args.append(json.dumps(stats))
        if notices is not None:
            sets.append("notices=?")
            args.append(json.dumps(notices))
        if samples is not None:
            sets.append("samples=?")
            args.append(json.dumps(samples))
        args.append(message_id)
        self._db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id=?", args)

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self._db.execute("SELECT * FROM messages WHERE conversation_id=? ORDER BY id",
                                (conversation_id,)).fetchall()
        return [_message(r) for r in rows]

    def get_message(self, message_id: int) -> StoredMessage | None:
        row = self._db.execute("SELECT * FROM messages WHERE id=?", (message_id,)).fetchone()
        return _message(row) if row else None

    def delete_messages_from(self, conversation_id: int, message_id: int) -> None:
        """Delete a message and every later one of its conversation (regenerate, edit)."""
        self._db.execute("DELETE FROM messages WHERE conversation_id=? AND id>=?",
                         (conversation_id, message_id))

    # -- preferences (settings screen, theme) -----------------------------------------------------
    def get_pref(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM prefs WHERE key=?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except ValueError:
            return default

    def set_pref(self, key: str, value: Any) -> None:
        self._db.execute("INSERT INTO prefs (key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (key, json.dumps(value)))

    def iter_all(self) -> Iterator[tuple[Conversation, list[StoredMessage]]]:
        for conv in self.list_conversations():
            yield conv, self.messages(conv.id)


def _check_header(path: Path) -> None:
    """Refuse, without writing, a non-empty file that is not SQLite at all."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise HistoryError(f"cannot read chat history {path}: {exc.strerror or exc}") from exc
    if head and head != b"SQLite format 3\x00":
        raise HistoryError(f"chat history {path} is not an SQLite database (damaged?); "
                           "it was not changed",
                           hint="move the file away to start fresh (keep it for recovery), "
                                "or use another one with --history")


def _has_foreign_tables(db: sqlite3.Connection) -> bool:
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    names.discard("sqlite_sequence")
    return bool(names)


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(row["id"], row["title"], row["created_at"], row["updated_at"],
                        row["preset"], row["model"], row["samples"])


def _samples(data: Any) -> dict[str, Any] | None:
    """A row's samples, or None when they are missing or not the shape this code writes (a
    damaged value must not keep the conversation from opening)."""
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        return None
    if not all(isinstance(s, dict) for s in data["samples"]):
        return None
    if data.get("vote") is not None and not isinstance(data["vote"], dict):
        data = {**data, "vote": None}
    return data


def _message(row: sqlite3.Row) -> StoredMessage:
    def load(text: str | None, default: Any) -> Any:
        try:
            return json.loads(text) if text else default
        except ValueError:
            return default

    return StoredMessage(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"],
        content=row["content"], reasoning=row["reasoning"], status=row["status"],
        finish_reason=row["finish_reason"], boxed=row["boxed"],
        stats=load(row["stats"], {}), notices=load(row["notices"], []), error=row["error"],
        samples=_samples(load(row["samples"], None)), created_at=row["created_at"], updated_at=row["updated_at"])
