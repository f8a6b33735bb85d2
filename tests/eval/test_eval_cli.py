"""`vibe-edge eval` as a user runs it, on the real engine with the demo model (small --limit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEMO = ["--model", "demo", "--slots", "2", "--ctx", "2048"]


def vibe(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vibe_edge", *args], capture_output=True,
                          text=True, timeout=timeout)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_eval_runs_grades_and_records_every_sample(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    done = vibe("eval", "--task", "gsm8k", "--limit", "3", "--max-tokens", "12", *DEMO,
                "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [section] = report["sections"]
    assert section["task"] == "gsm8k" and section["problems"] == 3
    assert 0.0 <= section["pass@1"]["accuracy"] <= 1.0 and len(section["pass@1"]["ci95"]) == 2
    assert section["completion_tokens"] > 0 and section["tokens_per_s"] > 0
    assert section["hit_length"] == 3  # 12 tokens is never enough for the demo model
    assert report["model"] == "demo" and report["n_slots"] == 2
    assert "3/3 done" in done.stderr and "tok/s" in done.stderr and "accuracy" in done.stderr

    kinds = [r["type"] for r in records(out)]
    assert kinds == ["run", "sample", "sample", "sample", "run_end"]
    sample = records(out)[1]
    for key in ("id", "messages", "output", "extracted", "gold", "correct", "verdict", "finish_reason", "stats"):
        assert key in sample
    assert sample["messages"][-1]["content"].endswith("within \\boxed{}.")  # the math preset's prompt

    # --resume with a larger --limit runs only the new problems; the report covers all of them.
    more = vibe("eval", "--task", "gsm8k", "--limit", "5", "--max-tokens", "12", *DEMO,
                "--out", str(out), "--resume", "--json")
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["sections"][0]["problems"] == 5
    assert json.loads(more.stdout)["interrupted"] is False
    samples = [r for r in records(out) if r["type"] == "sample"]
    assert sorted(r["id"] for r in samples) == [f"gsm8k-test-{i}" for i in range(5)]
    assert [r["type"] for r in records(out)].count("run") == 2

    # The report of the file alone, without a model.
    shown = vibe("eval", "--report", str(out))
    assert shown.returncode == 0 and "pass@1" in shown.stdout and "95% CI" in shown.stdout

    # The same file again without --resume would mix two runs: refused, the file untouched.
    before = out.read_bytes()
    again = vibe("eval", "--task", "gsm8k", "--limit", "1", *DEMO, "--out", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr and "--resume" in again.stderr
    assert out.read_bytes() == before

    # Resuming with other settings is refused too.
    other = vibe("eval", "--task", "gsm8k", "--limit", "5", *DEMO, "--max-tokens", "12",
                 "--temperature", "0", "--out", str(out), "--resume")
    assert other.returncode == 1 and "temperature" in other.stderr


def test_ctrl_c_keeps_what_is_done_and_resume_finishes(tmp_path):
    out = tmp_path / "interrupted.jsonl"
    args = ["eval", "--task", "gsm8k", "--limit", "12", "--max-tokens", "48", *DEMO, "--out", str(out)]
    # A shell without job control starts background jobs with SIGINT ignored, and a child
    # inherits that; a user's Ctrl-C is never ignored, so the child gets the default back.
    proc = subprocess.Popen([sys.executable, "-m", "vibe_edge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if out.exists() and sum(1 for r in records(out) if r["type"] == "sample") >= 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("no sample was written in time")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    kept = records(out)
    done = [r for r in kept if r["type"] == "sample"]
    assert 2 <= len(done) < 12
    assert kept[-1]["type"] == "run_end" and kept[-1]["interrupted"] is True
    assert "pass@1" in stdout  # the report of what was done is still printed

    finished = vibe(*args, "--resume", "--json")
    assert finished.returncode == 0, finished.stderr
    samples = [r for r in records(out) if r["type"] == "sample"]
    assert len(samples) == 12 and len({r["id"] for r in samples}) == 12


def test_samples_and_thinking_budgets(tmp_path):
    out = tmp_path / "k.jsonl"
    done = vibe("eval", "--task", "gsm8k", "--limit", "2", "--samples", "2", "--thinking-budget", "8,16",
                "--max-tokens", "10", *DEMO, "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    assert "does not think" in done.stderr  # the demo model has no <think>: said plainly
    report = json.loads(done.stdout)
    assert [s["budget_label"] for s in report["sections"]] == ["8", "16"]
    for section in report["sections"]:
        assert section["samples_per_problem"] == 2 and section["samples"] == 4
        assert {"pass@1", "pass@2", "maj@2"} <= set(section)
    seeds = {}
    for r in records(out):
        if r["type"] == "sample":
            seeds.setdefault((r["id"], r["sample"]), []).append(r["output"])
    assert len(seeds) == 4


def test_compare_two_result_files(tmp_path):
    def write(path: Path, outcomes: list[bool]) -> None:
        lines = [json.dumps({"type": "run", "task": "gsm8k", "model": path.stem})]
        lines += [json.dumps({"type": "sample", "task": "gsm8k", "id": f"p{i}", "sample": 0,
                              "thinking_budget": None, "correct": ok}) for i, ok in enumerate(outcomes)]
        path.write_text("\n".join(lines) + "\n")

    a, b = tmp_path / "q4.jsonl", tmp_path / "q8.jsonl"
    write(a, [True] * 30 + [False] * 10)
    write(b, [True] * 10 + [False] * 30)
    done = vibe("eval", "--compare", str(a), str(b))
    assert done.returncode == 0, done.stderr
    assert "McNemar" in done.stdout and "significant" in done.stdout and "+50.0 points" in done.stdout
    as_json = json.loads(vibe("eval", "--compare", str(a), str(b), "--json").stdout)
    [row] = as_json["comparisons"]
    assert row["n"] == 40 and row["only_a"] == 20 and row["only_b"] == 0 and row["significant"]


def test_grade_predictions_of_another_system(tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(r) for r in [
        {"id": "test/precalculus/807.json", "prediction": "\\boxed{(3, \\pi/2)}"},
        {"id": "test/algebra/2584.json", "prediction": "\\boxed{4}"},
    ]) + "\n")
    done = vibe("eval", "--grade", str(preds), "--task", "math500", "--json")
    assert done.returncode == 0, done.stderr
    [section] = json.loads(done.stdout)["sections"]
    assert section["pass@1"]["correct"] == 1 and section["pass@1"]["n"] == 2
    assert "by_subject" in section and set(section["by_subject"]) == {"Algebra", "Precalculus"}


@pytest.mark.parametrize(("args", "words"), [
    (["eval", "--task", "mmlu", "--model", "demo"], ["unknown task", "gsm8k"]),
    (["eval", "--model", "demo"], ["--task"]),
    (["eval", "--task", "gsm8k", "--resume", "--model", "demo"], ["--resume needs --out"]),
    (["eval", "--task", "gsm8k", "--thinking-budget", "lots", "--model", "demo"], ["integers"]),
    (["eval", "--task", "gsm8k", "--preset", "poetry", "--model", "demo"], ["poetry"]),
    (["eval", "--report", "/nonexistent/r.jsonl"], ["no results file"]),
    (["eval", "--task", "jsonl:/nonexistent/set.jsonl", "--model", "demo"], ["no problem file"]),
])
def test_bad_input_is_a_clear_error(args, words):
    done = vibe(*args)
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr


def test_a_users_own_set(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"problem": "What is 2+2?", "answer": "4"}) + "\n")
    done = vibe("eval", "--task", f"jsonl:{path}", "--max-tokens", "8", *DEMO, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sections"][0]["task"] == "jsonl:mine.jsonl"
    assert report["interrupted"] is False and report["wall_s"] > 0
    assert not os.path.exists(tmp_path / "results.jsonl")  # nothing written without --out


def test_progress_line_tells_generating_from_queued():
    from vibe_edge.cli.eval import _ProgressDisplay
    from vibe_edge.eval.runner import EvalProgress

    line = _ProgressDisplay()._line(EvalProgress(total=10, done=3, correct=2, running=6, slots=4))
    assert "4 generating + 2 queued" in line and "3/10 done" in line
    assert "2 generating ·" in _ProgressDisplay()._line(EvalProgress(total=10, running=2, slots=4))
