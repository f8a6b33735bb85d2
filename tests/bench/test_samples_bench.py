"""`vibe-edge bench --suite samples` end to end on the demo model, at a tiny size: the n side
evaluates the prompt once for all its samples, and every sample generates the asked tokens."""

import json

from typer.testing import CliRunner

from vibe_edge.bench.samples import SamplesBenchConfig, format_samples_report, run_samples_benchmark
from vibe_edge.cli.app import app


def test_samples_bench_shares_the_prefill_and_pairs_each_round(demo_model):
    report = run_samples_benchmark(SamplesBenchConfig(model_path=str(demo_model), samples=3,
                                                      tokens=16, rounds=2))
    one, many = report["one"], report["many"]
    assert one["completion_tokens"] == 16 and many["completion_tokens"] == 3 * 16  # no early end
    # Each run's prompt is new to the cache, and the n side computes it once, not three times.
    assert one["prompt_evaluated"] > 0
    assert many["prompt_evaluated"] == one["prompt_evaluated"]
    assert len(report["costs"]) == 2 and report["cost"] > 0
    assert report["target"] is None  # the target is stated for n=4
    assert "n=3" in format_samples_report(report)


def test_samples_suite_on_the_cli(demo_model):
    result = CliRunner().invoke(app, ["bench", "--suite", "samples", "--model", str(demo_model),
                                      "--tokens", "8", "--rounds", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["samples"] == 4 and report["target"] == 2.5
    assert report["many"]["completion_tokens"] == 32
