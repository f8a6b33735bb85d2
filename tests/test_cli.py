"""The `vibe-edge` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

COMMANDS = ["doctor", "run", "bench", "convert", "pull", "models", "serve", "chat", "eval"]


def vibe(*args: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vibe_edge", *args], capture_output=True,
                          text=True, timeout=timeout, input=stdin)


def test_every_command_has_help():
    top = vibe("--help")
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
        shown = vibe(command, "--help")
        assert shown.returncode == 0, shown.stderr
        assert "Usage" in shown.stdout


def test_run_streams_an_answer_on_the_demo_model():
    done = vibe("run", "--model", "demo", "--preset", "general", "--temperature", "0",
                "--max-tokens", "16", "--json", "What is the capital of France?")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[done.stdout.index("\n{") + 1:])
    assert report["answer"] and report["finish_reason"] in ("stop", "length")
    assert report["stats"]["prompt_tokens"] > 0 and report["stats"]["decode_tps"] > 0
    assert "TTFT" in done.stderr and "finished:" in done.stderr


def test_run_samples_with_a_vote_prints_a_line_per_sample_then_the_winner_and_tally():
    # --no-spec: greedy samples are identical only when their batches are (a slot that drafts
    # decodes in a larger batch, and llama.cpp's CPU kernels are not batch-invariant).
    # A question the demo model answers in a few tokens and then stops: a sample cut off at the
    # length limit has no answer and abstains (what the model writes differs between CPU builds).
    done = vibe("run", "--model", "demo", "--preset", "general", "--temperature", "0", "--no-spec",
                "--max-tokens", "24", "--samples", "3", "--vote", "--json",
                "What is 2+2? Answer with the number only.")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line.split(":")[0] for line in lines if line.startswith("sample ")) == \
        ["sample 0", "sample 1", "sample 2"]
    assert any(line.startswith("winner: ") and "3 of 3 votes" in line for line in lines)
    assert any(line.startswith("tally: ") for line in lines)
    report = json.loads(done.stdout[done.stdout.index("\n{") + 1:])
    assert len(report["samples"]) == 3 and report["vote"]["winner_samples"] == [0, 1, 2]
    assert [s["stats"]["prompt_tokens"] - s["stats"]["cached_tokens"] for s in report["samples"]][1:] == [0, 0]


def test_run_without_a_model_uses_the_demo_and_says_so():
    done = vibe("run", "--preset", "general", "--max-tokens", "4", "Hi")
    assert done.returncode == 0, done.stderr
    assert "demo model" in done.stderr and "vibe-edge pull" in done.stderr


def test_run_reads_the_prompt_from_stdin():
    done = vibe("run", "--model", "demo", "--max-tokens", "4", "--json", "-", stdin="Hello")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout[done.stdout.index("\n{") + 1:])["stats"]["prompt_tokens"] > 5


@pytest.mark.parametrize("args, words", [
    (["run", "--model", "no-such-model", "hi"], ["no model named", "hint"]),
    (["run", "--model", "demo", "--temperature", "9", "hi"], ["temperature"]),
    (["run", "--model", "demo", "--ctx", "64", "hi"], ["ctx"]),
    (["run", "--model", "demo", "--preset", "poetry", "hi"], ["poetry", "math"]),
])
def test_bad_input_is_a_clear_error_and_exit_1(args, words):
    done = vibe(*args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr


def test_doctor_json_describes_hardware_and_plan():
    done = vibe("doctor", "--json", "--model", "demo")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["hardware"]["physical_cores"] >= 1
    plan = report["plan"]
    assert plan["threads"] >= 1 and plan["n_slots"] >= 1 and plan["ctx_per_slot"] >= 2048
    assert report["fits"] is True


def test_doctor_plans_for_a_described_t4(tmp_path):
    t4 = {"os": "Linux", "machine": "x86_64", "cpu_model": "Xeon", "physical_cores": 4,
          "logical_cores": 8, "cpu_features": ["avx2"], "ram_total_bytes": 16 * 2**30,
          "ram_available_bytes": 14 * 2**30, "gpu_offload_supported": True,
          "gpus": [{"name": "Tesla T4", "total_bytes": 16 * 2**30, "free_bytes": 15 * 2**30,
                    "compute_capability": "7.5"}], "jetson_model": None, "unified_memory": False}
    described = tmp_path / "t4.json"
    described.write_text(json.dumps(t4))
    done = vibe("doctor", "--json", "--hardware", str(described))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    assert plan["gpu_layers"] == -1 and plan["prefer_quant"] == "Q8_0"
    text = vibe("doctor", "--hardware", str(described))
    assert "T4" in text.stdout and "gpu_layers" in text.stdout


def test_doctor_refuses_a_plan_that_cannot_fit(tmp_path):
    tiny = {"os": "Linux", "machine": "aarch64", "cpu_model": "A53", "physical_cores": 4,
            "logical_cores": 4, "cpu_features": ["neon"], "ram_total_bytes": 1 * 2**30,
            "ram_available_bytes": 600 * 2**20, "gpu_offload_supported": False, "gpus": [],
            "jetson_model": None, "unified_memory": False}
    described = tmp_path / "tiny.json"
    described.write_text(json.dumps(tiny))
    done = vibe("doctor", "--hardware", str(described))
    assert done.returncode == 1
    assert "does not fit" in done.stdout
