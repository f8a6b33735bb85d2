"""The eval loop in-process on the real engine (demo model): every slot busy, a stop keeps what
is done, and a problem that cannot run is a failed sample, not a failed run."""

from __future__ import annotations

import threading

import pytest

from vibe_edge.presets import get_preset
from vibe_edge.engine import Engine, EngineConfig, SpecConfig
from vibe_edge.eval.datasets import Problem, Task, load_task, select_problems
from vibe_edge.eval.prompts import RequestPlan, request_for, sample_seed
from vibe_edge.eval.results import ResultsWriter, read_results
from vibe_edge.eval.runner import EvalRun, plan_work, run_eval


@pytest.fixture(scope="module")
def engine(demo_model):
    # Speculation off: the seeded-samples test compares a batched sample with the same sample run
    # alone, token for token, and a slot that drafts decodes in a larger batch (llama.cpp's CPU
    # kernels are not batch-invariant at near ties; tests/engine/test_samples_engine.py).
    with Engine(EngineConfig(model_path=demo_model, n_slots=3, ctx_per_slot=1024,
                             spec=SpecConfig(enabled=False))) as engine:
        yield engine


def _run(task, problems, **kwargs) -> EvalRun:
    plan = RequestPlan(preset=get_preset("math"), max_tokens=kwargs.pop("max_tokens", 24))
    return EvalRun(task=task, plan=plan, items=plan_work(problems, task=task.name), **kwargs)


def test_all_slots_are_kept_busy(engine):
    task = load_task("gsm8k")
    run = _run(task, select_problems(task.problems, limit=9))
    busy, queued = [], []

    def watch(progress):
        status = engine.status()
        busy.append(status.busy_slots)
        queued.append(status.queued)

    progress = run_eval(engine, run, on_progress=watch)
    assert progress.done == 9 and not progress.interrupted
    assert max(busy) == engine.info.n_slots  # the batch filled every slot
    assert max(queued) >= 1                  # and had the next request waiting
    assert len(run.records) == 9 and all("correct" in r for r in run.records)
    assert engine.status().busy_slots == 0


def test_stop_keeps_what_is_done_and_frees_the_slots(engine, tmp_path):
    task = load_task("gsm8k")
    out = tmp_path / "r.jsonl"
    run = _run(task, select_problems(task.problems, limit=30), writer=ResultsWriter(out), max_tokens=64)
    stop = threading.Event()

    def stop_after_two(progress):
        if progress.done >= 2:
            stop.set()

    progress = run_eval(engine, run, on_progress=stop_after_two, stop=stop)
    assert progress.interrupted and 2 <= progress.done < 30
    saved = read_results(out)
    assert len(saved.samples) == progress.done
    assert saved.ends[-1]["interrupted"] is True
    for _ in range(100):  # the cancelled requests leave their slots within a step or two
        if engine.status().busy_slots == 0 and engine.status().queued == 0:
            break
        threading.Event().wait(0.05)
    assert engine.status().busy_slots == 0 and engine.status().queued == 0


def test_a_problem_too_long_for_a_slot_is_a_failed_sample(engine):
    long = Task("long", "math", "math", (Problem("huge", "word " * 3000, "1"), Problem("ok", "1+1?", "2")))
    run = _run(long, long.problems)
    progress = run_eval(engine, run)
    assert progress.done == 2
    huge = next(r for r in run.records if r["id"] == "huge")
    assert huge["correct"] is False and "not run" in huge["verdict"] and huge["error"]


def test_requests_follow_the_preset_and_are_seeded_per_sample():
    task = load_task("gsm8k")
    plan = RequestPlan(preset=get_preset("math"), seed=3)
    problem = task.problems[0]
    first, messages = request_for(plan, task, problem, sample=0, thinking_budget=None)
    again, _ = request_for(plan, task, problem, sample=0, thinking_budget=512)
    second, _ = request_for(plan, task, problem, sample=1, thinking_budget=None)
    assert messages[0]["role"] == "system" and "\\boxed{}" in messages[-1]["content"]
    assert first.sampling.temperature == 1.0 and first.sampling.seed == sample_seed(3, problem.id, 0)
    assert again.sampling.seed == first.sampling.seed  # a budget sweep compares the same draws
    assert second.sampling.seed != first.sampling.seed
    assert first.reasoning.thinking_budget == get_preset("math").thinking_budget
    assert again.reasoning.thinking_budget == 512
    unlimited, _ = request_for(plan, task, problem, sample=0, thinking_budget=-1)
    assert unlimited.reasoning.thinking_budget is None
    code, code_messages = request_for(RequestPlan(preset=get_preset("code")), load_task("humaneval"),
                                      load_task("humaneval").problems[0], sample=0, thinking_budget=None)
    assert "```python" in code_messages[-1]["content"] and code.sampling.temperature == 0.6


def test_resume_skips_exactly_the_recorded_keys():
    task = load_task("gsm8k")
    problems = select_problems(task.problems, limit=3)
    skip = {("gsm8k", "gsm8k-test-1", None, 0), ("gsm8k", "gsm8k-test-2", 512, 1)}
    items = plan_work(problems, samples=2, thinking_budgets=[None, 512], task="gsm8k", skip=skip)
    keys = {(i.problem.id, i.thinking_budget, i.sample) for i in items}
    assert len(items) == 3 * 2 * 2 - 2
    assert ("gsm8k-test-1", None, 0) not in keys and ("gsm8k-test-2", 512, 1) not in keys
    assert [i.thinking_budget for i in items[:6]] == [None] * 5 + [512]  # budget-major order


def test_the_samples_of_a_problem_share_one_prefill_and_keep_their_own_seeds(engine):
    task = load_task("gsm8k")
    problems = select_problems(task.problems, limit=2)
    plan = RequestPlan(preset=get_preset("math"), max_tokens=12, seed=3)
    run = EvalRun(task=task, plan=plan, items=plan_work(problems, samples=3, task=task.name))
    progress = run_eval(engine, run)
    assert progress.done == 6 and not progress.interrupted
    for problem in problems:
        records = sorted((r for r in run.records if r["id"] == problem.id), key=lambda r: r["sample"])
        assert [r["sample"] for r in records] == [0, 1, 2]
        evaluated = [r["stats"]["prompt_tokens"] - r["stats"]["cached_tokens"] for r in records]
        assert evaluated[1:] == [0, 0], "the prompt is evaluated once per problem"
        # Sample 2 drew with its own seed: the same output as that sample alone.
        request, _ = request_for(plan, task, problem, sample=2, thinking_budget=None,
                                 ctx_per_slot=engine.info.ctx_per_slot)
        assert request.sampling.seed == sample_seed(3, problem.id, 2)
        assert engine.generate(request, timeout=120).text == records[2]["output"]
