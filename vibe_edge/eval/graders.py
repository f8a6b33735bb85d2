"""Grading one response: math by answer equivalence, code by running the problem's tests.

Math: the answer is the last `\\boxed{}` of the response's answer part (after any think block:
the engine's extraction), or, for tasks whose answers are plain numbers (GSM8K), the last number
when nothing is boxed. It is correct when math-verify finds it equivalent to the gold answer
(vibe_edge.text.equivalence), not when the strings are equal.

Code: the last fenced code block (```python, or an unlabelled fence) is the solution. It runs in
the sandbox with the problem's tests appended, as HumanEval's harness does
(`solution + test + check(entry_point)`); it passes when the program runs to its end.
"""

from __future__ import annotations

import re

from vibe_edge.text.equivalence import answers_equivalent, final_answer
from vibe_edge.eval.datasets import Problem, Task
from vibe_edge.eval.sandbox import SandboxLimits, run_python
from vibe_edge.eval.types import Verdict

__all__ = ["answer_part", "build_program", "extract_code", "grade", "grade_code", "grade_math"]

THINK_CLOSE = "</think>"
# A fence opens with ``` and an optional language tag, and closes with ``` on its own line.
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3"}
_IMPORT = re.compile(r"^(?:from\s+\S+\s+import\s+.+|import\s+.+)$", re.MULTILINE)


def answer_part(text: str) -> str:
    """What follows the think block (all of it for a response that did not think)."""
    at = text.rfind(THINK_CLOSE)
    return text[at + len(THINK_CLOSE):] if at >= 0 else text


def grade_math(task: Task, problem: Problem, answer_text: str) -> Verdict:
    extracted = final_answer(answer_text, number_fallback=task.number_fallback)
    if extracted is None:
        what = "no \\boxed{} answer and no number" if task.number_fallback else "no \\boxed{} answer"
        return Verdict(False, None, what)
    if answers_equivalent(problem.answer, extracted):
        return Verdict(True, extracted, "equivalent")
    return Verdict(False, extracted, "not equivalent")


def extract_code(text: str) -> str | None:
    """The last fenced Python (or untagged) code block, or None when there is none."""
    found = None
    for match in _FENCE.finditer(text):
        if match.group(1).lower() in _PYTHON_TAGS and match.group(2).strip():
            found = match.group(2).rstrip()
    return found


def build_program(problem: Problem, code: str) -> str:
    """The program the sandbox runs: the solution, the tests, and the call that checks it.

    A solution that only gives the function's body (a completion, not a whole function) is
    appended to the problem's prompt; the prompt's imports always come first (models often
    drop `from typing import List`)."""
    if problem.entry_point and not re.search(rf"^\s*def\s+{re.escape(problem.entry_point)}\s*\(", code, re.MULTILINE):
        code = problem.problem + code
    imports = "\n".join(_IMPORT.findall(problem.problem))
    return f"{imports}\n\n{code}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def grade_code(problem: Problem, answer_text: str, limits: SandboxLimits = SandboxLimits()) -> Verdict:
    code = extract_code(answer_text)
    if code is None:
        return Verdict(False, None, "no fenced code block")
    result = run_python(build_program(problem, code), limits)
    summary = {"status": result.status, "detail": result.detail, "wall_s": result.wall_s,
               "isolation": result.isolation, "stderr": result.stderr[-1000:]}
    return Verdict(result.passed, code, "passed" if result.passed else f"{result.status}: {result.detail}",
                   sandbox=summary)


def grade(task: Task, problem: Problem, response: str, *,
          limits: SandboxLimits = SandboxLimits()) -> Verdict:
    """Grade a whole response (a think block, if any, is skipped)."""
    answer = answer_part(response)
    if task.kind == "code":
        return grade_code(problem, answer, limits)
    return grade_math(task, problem, answer)
