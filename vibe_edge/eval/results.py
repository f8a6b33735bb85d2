"""The results file (`--out results.jsonl`): one JSON object per line, appended as work finishes.

    {"type": "run", "run_id": ..., "task": ..., "model": ..., "preset": ..., ...}   a run began
    {"type": "sample", "run_id": ..., "id": ..., "sample": 0, "thinking_budget": null,
     "messages": [...], "output": ..., "extracted": ..., "gold": ..., "correct": true, ...}
    {"type": "run_end", "run_id": ..., "wall_s": ..., "interrupted": false}

Every sample line is flushed when written, so Ctrl-C (or a crash) loses at most the samples
still generating; `--resume` reads the file, skips what is there and appends. A last line cut
off by a kill is ignored (and overwritten by the next run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from vibe_edge.eval.types import EvalError

__all__ = ["ResultsFile", "ResultsWriter", "read_results", "sample_key"]


def sample_key(record: dict[str, Any]) -> tuple[str, str, Any, int]:
    """What identifies a sample across runs: task, problem, thinking budget, sample number."""
    return (record.get("task", ""), str(record.get("id")), record.get("thinking_budget"),
            int(record.get("sample", 0)))


@dataclass
class ResultsFile:
    path: Path | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)
    good_bytes: int = 0  # length of the well-formed prefix (a torn last line is cut at resume)

    def add(self, record: dict[str, Any] | None) -> None:
        if record is None:
            return
        kind = record.get("type")
        if kind == "run":
            self.runs.append(record)
        elif kind == "sample":
            self.samples.append(record)
        elif kind == "run_end":
            self.ends.append(record)

    def done_keys(self) -> set[tuple[str, str, Any, int]]:
        return {sample_key(s) for s in self.samples}


def _parse_line(raw: bytes) -> dict[str, Any] | None | bool:
    """The record on a line, None for a blank line, False when it is not a record."""
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return False
    return record if isinstance(record, dict) else False


def read_results(path: str | Path) -> ResultsFile:
    """Parse a results file; EvalError when it is missing or damaged before its last line."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EvalError(f"no results file at {path}", hint="run `vibe-edge eval ... --out FILE` first") from None
    except OSError as exc:
        raise EvalError(f"cannot read {path}: {exc.strerror}") from None
    parsed = ResultsFile(path)
    *complete, last = data.split(b"\n")  # `last` is b"" when the file ends with a newline
    for number, raw in enumerate(complete, 1):
        record = _parse_line(raw)
        if record is False:
            raise EvalError(f"{path} line {number} is not a results record",
                            hint="is this a file written by `vibe-edge eval --out`?")
        parsed.add(record)
    parsed.good_bytes = len(data) - len(last)
    record = _parse_line(last)
    if record is not False:  # a last line without its newline: keep it if it is whole
        parsed.add(record)
        parsed.good_bytes = len(data)
    return parsed


class ResultsWriter:
    """Appends records, one line each, flushed (and synced now and then) as they come."""

    SYNC_EVERY = 16

    def __init__(self, path: str | Path, *, truncate_to: int | None = None):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_to is not None and self.path.exists() and self.path.stat().st_size > truncate_to:
            with open(self.path, "r+b") as fh:
                fh.truncate(truncate_to)
        if truncate_to is not None and truncate_to > 0:
            with open(self.path, "rb") as fh:  # the kept part must end with a newline
                fh.seek(truncate_to - 1)
                needs_newline = fh.read(1) != b"\n"
        else:
            needs_newline = False
        self._fh: TextIO = open(self.path, "a", encoding="utf-8")
        if needs_newline:
            self._fh.write("\n")
        self._unsynced = 0

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        self._unsynced += 1
        if self._unsynced >= self.SYNC_EVERY:
            os.fsync(self._fh.fileno())
            self._unsynced = 0

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
