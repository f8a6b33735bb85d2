"""On the real-weight Qwen2 1.5B (when scripts/fetch_realmodel.py has fetched it): the file is
the published one, has VibeThinker's exact shape, and the eval loop gets easy problems right."""

from __future__ import annotations

import json

import pytest

from vibe_edge.presets import get_preset
from vibe_edge.engine import Engine, EngineConfig
from vibe_edge.eval.datasets import load_task
from vibe_edge.eval.prompts import RequestPlan
from vibe_edge.eval.runner import EvalRun, plan_work, run_eval
from vibe_edge.modelfile import inspect_gguf

pytestmark = pytest.mark.realmodel

SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def test_the_file_is_the_published_one_with_vibethinkers_shape(realmodel):
    manifest = json.loads(realmodel.with_name(realmodel.stem + ".manifest.json").read_text())
    assert manifest["sha256"] == SHA256 and manifest["quant"] == "Q4_K_M"
    facts = inspect_gguf(realmodel)
    assert facts.name == "Qwen2.5 Coder 1.5B Instruct GGUF" and facts.architecture == "qwen2"
    # VibeThinker-1.5B: 28 layers, hidden 1536, 12 heads / 2 KV heads, vocab 151936.
    assert (facts.n_layer, facts.n_embd, facts.n_head, facts.n_head_kv, facts.vocab_size) == (28, 1536, 12, 2, 151936)


@pytest.fixture(scope="module")
def engine(realmodel):
    with Engine(EngineConfig(model_path=realmodel, n_slots=2, ctx_per_slot=2048)) as engine:
        yield engine


def test_greedy_eval_solves_an_easy_word_problem(engine):
    task = load_task("gsm8k")
    robe = [p for p in task.problems if p.id == "gsm8k-test-1"]  # 2 + 1 = 3 bolts
    run = EvalRun(task=task, plan=RequestPlan(preset=get_preset("math"), temperature=0.0, max_tokens=600),
                  items=plan_work(robe, task="gsm8k"))
    run_eval(engine, run)
    [record] = run.records
    assert record["correct"], record["output"]
    assert record["extracted"] == "3"


def test_greedy_eval_passes_humaneval_0_in_the_sandbox(engine):
    task = load_task("humaneval")
    run = EvalRun(task=task, plan=RequestPlan(preset=get_preset("code"), temperature=0.0, max_tokens=600),
                  items=plan_work(task.problems[:1], task="humaneval"))
    run_eval(engine, run)
    [record] = run.records
    assert record["correct"], (record["verdict"], record["output"])
    assert record["sandbox"]["status"] == "passed"
