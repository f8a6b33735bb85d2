"""`vibe-edge bench` runs end to end on the real demo model and reports what the issue asks for.

Speed is never asserted here (that is what the benchmark itself is for): these tests check the
report's shape, that every figure was really measured, and the paired-ratio arithmetic.
"""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from vibe_edge.bench.engine import TARGETS, BenchConfig, format_report, run_benchmark
from vibe_edge.bench.metrics import middle_half
from vibe_edge.cli.app import app

TINY = dict(n_tokens=8, prompt_tokens=48, history_tokens=96, streams=(1, 2, 4), rounds=2,
            decode_pairs=3, segment_tokens=8)


@pytest.fixture(scope="module")
def report(demo_model):
    return run_benchmark(BenchConfig(model_path=str(demo_model), threads=2, **TINY))


def test_report_has_every_figure_of_the_issue(report):
    assert report["baseline"]["decode_tps"] > 0
    single = report["single"]
    assert single["decode_tps"] > 0 and single["ttft_ms"] > 0 and single["prefill_tps"] > 0
    assert single["prompt_tokens"] >= 40
    assert [c["streams"] for c in report["concurrent"]] == [1, 2, 4]
    assert all(c["aggregate_decode_tps"] > 0 for c in report["concurrent"])
    assert report["concurrent"][0]["vs_single"] == 1.0
    four = next(c for c in report["concurrent"] if c["streams"] == 4)
    assert four["vs_single"] == report["ratios"]["aggregate4_vs_single"]
    prefix = report["prefix_cache"]
    assert prefix["cold_ttft_ms"] > 0 and prefix["warm_ttft_ms"] > 0
    # The warm turn really came from the cache: all but the new question's tokens.
    assert prefix["warm_cached_tokens"] >= prefix["history_tokens"] - 16
    assert report["ttft_p95"]["simultaneous_ms"] > 0 and report["ttft_p95"]["sequential_ms"] > 0
    assert set(report["ratios"]) == set(TARGETS) == set(report["met"])
    assert all(math.isfinite(v) and v > 0 for v in report["ratios"].values())
    for name in ("single_vs_baseline", "aggregate4_vs_single"):
        low, high = report["spread"][name]
        assert low <= report["ratios"][name] <= high
    json.dumps(report)  # --json must be able to print it


def test_text_report_marks_each_target(report):
    text = format_report(report)
    for name in TARGETS:
        assert name in text
    assert "3 alternating pairs of 8-token segments" in text


def test_middle_half_of_paired_ratios():
    assert middle_half([1.0]) == [1.0, 1.0]
    assert middle_half([0.9, 1.0, 1.1, 1.2, 5.0]) == [1.0, 1.2]  # one wild pair moves nothing


def test_bench_cli_rejects_zero_rounds(demo_model):
    result = CliRunner().invoke(app, ["bench", "--model", str(demo_model), "--rounds", "0"])
    assert result.exit_code != 0
    assert "rounds" in result.output
