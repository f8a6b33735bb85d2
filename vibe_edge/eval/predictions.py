"""`vibe-edge eval --grade FILE`: grade predictions made by any system, without a model.

FILE is JSONL, one prediction per line, in either form:

    {"id": "test/algebra/2584.json", "prediction": "... \\boxed{\\frac{14}{3}}"}   gold from --task
    {"answer": "\\frac{14}{3}", "prediction": "... \\boxed{14/3}"}              gold given

`prediction` is the whole response (a think block is skipped; the answer is its last
`\\boxed{}`, or the last number when the task's answers are numbers). With --task humaneval the
prediction's last fenced code block runs against the problem's tests in the sandbox. Optional
`sample` (0, 1, ...) and `thinking_budget` fields are kept, so pass@k/maj@k work here too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vibe_edge.eval.datasets import Problem, Task
from vibe_edge.eval.graders import grade
from vibe_edge.eval.sandbox import SandboxLimits
from vibe_edge.eval.types import EvalError

__all__ = ["grade_predictions"]

_PLAIN_NUMBER = re.compile(r"^-?[\d,]+(?:\.\d+)?$")


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalError(f"no predictions file at {path}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise EvalError(f"{path} line {number} is not JSON",
                            hint='each line: {"id": ..., "prediction": ...} or {"answer": ..., "prediction": ...}') from None
        if not isinstance(row, dict) or not isinstance(row.get("prediction"), str):
            raise EvalError(f"{path} line {number} has no \"prediction\" text",
                            hint='each line: {"id": ..., "prediction": ...} or {"answer": ..., "prediction": ...}')
        rows.append(row)
    if not rows:
        raise EvalError(f"{path} holds no predictions")
    return rows


def grade_predictions(path: str | Path, task: Task | None = None, *,
                      limits: SandboxLimits = SandboxLimits()) -> list[dict[str, Any]]:
    """Graded sample records (the same shape `vibe-edge eval --out` writes)."""
    path = Path(path).expanduser()
    problems = task.by_id() if task is not None else {}
    records = []
    for number, row in enumerate(_rows(path), 1):
        pid = row.get("id")
        if "answer" in row and row["answer"] is not None:
            gold = str(row["answer"])
            known = problems.get(str(pid)) if pid is not None else None
            problem = Problem(id=str(pid if pid is not None else f"line-{number}"), problem="",
                              answer=gold, subject=known.subject if known else row.get("subject"),
                              level=known.level if known else row.get("level"))
            row_task = task if task is not None and task.kind == "math" else Task(
                "predictions", "math", "math", (), number_fallback=bool(_PLAIN_NUMBER.match(gold)))
        else:
            if task is None:
                raise EvalError(f"{path} line {number} gives an id but no answer",
                                hint="pass --task so the gold answers can be looked up, or give \"answer\" per line")
            if str(pid) not in problems:
                raise EvalError(f"{path} line {number}: {task.name} has no problem with id {pid!r}")
            problem, row_task = problems[str(pid)], task
        verdict = grade(row_task, problem, row["prediction"], limits=limits)
        record = {"type": "sample", "task": row_task.name if task is None else task.name, "id": problem.id,
                  "sample": int(row.get("sample", 0)), "thinking_budget": row.get("thinking_budget"),
                  "subject": problem.subject, "level": problem.level, "gold": problem.answer,
                  "output": row["prediction"], "extracted": verdict.extracted, "correct": verdict.correct,
                  "verdict": verdict.detail}
        if verdict.sandbox is not None:
            record["sandbox"] = verdict.sandbox
        records.append(record)
    return records
