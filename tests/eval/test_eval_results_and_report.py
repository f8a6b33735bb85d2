"""The results file survives a kill mid-line; reports compute maj@K, pass@K and breakdowns."""

from __future__ import annotations

import json

import pytest

from vibe_edge.eval.report import compare, format_report, summarize
from vibe_edge.eval.results import ResultsWriter, read_results
from vibe_edge.eval.types import EvalError


def _sample(pid, correct, *, sample=0, extracted=None, gold="1", budget=None, **extra):
    return {"type": "sample", "task": "t", "id": pid, "sample": sample, "thinking_budget": budget,
            "correct": correct, "extracted": extracted, "gold": gold, **extra}


def test_a_line_torn_by_a_kill_is_ignored_and_cut_on_resume(tmp_path):
    path = tmp_path / "r.jsonl"
    whole = json.dumps({"type": "run", "run_id": "a"}) + "\n" + json.dumps(_sample("p1", True)) + "\n"
    path.write_text(whole + '{"type": "sample", "id": "p2", "corr')
    parsed = read_results(path)
    assert [s["id"] for s in parsed.samples] == ["p1"] and parsed.good_bytes == len(whole.encode())
    with ResultsWriter(path, truncate_to=parsed.good_bytes) as writer:
        writer.write(_sample("p2", False))
    assert [s["id"] for s in read_results(path).samples] == ["p1", "p2"]


def test_a_whole_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(_sample("p1", True)))
    parsed = read_results(path)
    assert len(parsed.samples) == 1
    with ResultsWriter(path, truncate_to=parsed.good_bytes) as writer:
        writer.write(_sample("p2", True))
    assert len(read_results(path).samples) == 2


def test_damage_before_the_last_line_is_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("garbage\n" + json.dumps(_sample("p1", True)) + "\n")
    with pytest.raises(EvalError, match="line 1"):
        read_results(path)


def test_maj_and_pass_at_k_over_equivalent_answers():
    samples = [
        # p1: two of three say 1/2 (written two ways), gold 0.5 -> maj right, pass@1 = 2/3
        _sample("p1", True, sample=0, extracted="\\frac{1}{2}", gold="0.5"),
        _sample("p1", True, sample=1, extracted="0.5", gold="0.5"),
        _sample("p1", False, sample=2, extracted="3", gold="0.5"),
        # p2: one right, the majority wrong -> maj wrong, pass@3 right
        _sample("p2", False, sample=0, extracted="7", gold="5"),
        _sample("p2", False, sample=1, extracted="7", gold="5"),
        _sample("p2", True, sample=2, extracted="5", gold="5"),
        # p3: no answers at all
        _sample("p3", False, sample=0, gold="2"), _sample("p3", False, sample=1, gold="2"),
        _sample("p3", False, sample=2, gold="2"),
    ]
    [section] = summarize(samples)["sections"]
    assert section["samples_per_problem"] == 3
    assert section["maj@3"]["correct"] == 1 and section["pass@3"]["correct"] == 2
    assert section["pass@1"]["accuracy"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert section["no_answer"] == 3
    assert "maj@3" in format_report(summarize(samples))


def test_breakdown_by_subject_and_level():
    samples = [_sample("a", True, subject="Algebra", level=1), _sample("b", False, subject="Algebra", level=5),
               _sample("c", True, subject="Geometry", level=5)]
    [section] = summarize(samples)["sections"]
    assert section["by_subject"]["Algebra"]["correct"] == 1 and section["by_subject"]["Algebra"]["n"] == 2
    assert section["by_level"]["5"]["n"] == 2
    text = format_report(summarize(samples))
    assert "by subject" in text and "Geometry" in text


def test_compare_pairs_only_common_problems_and_sample_zero():
    a = [_sample("p1", True), _sample("p2", True), _sample("p3", False), _sample("p1", False, sample=1)]
    b = [_sample("p1", False), _sample("p2", True), _sample("p4", True)]
    [row] = compare(a, b)
    assert row["n"] == 2 and row["only_a"] == 1 and row["only_b"] == 0
    assert row["only_in_a"] == 1 and row["only_in_b"] == 1


def test_a_run_killed_before_its_end_record_reads_as_interrupted_until_resumed():
    runs = [{"type": "run", "run_id": "a"}]
    assert summarize([], runs, [])["interrupted"] is True
    runs.append({"type": "run", "run_id": "b"})
    assert summarize([], runs, [{"run_id": "b", "interrupted": False}])["interrupted"] is False
    assert summarize([], runs, [{"run_id": "b", "interrupted": True}])["interrupted"] is True


def _voted(pid, sample, extracted, correct, *, tokens, reasoning=0, finish="stop"):
    return _sample(pid, correct, sample=sample, extracted=extracted, gold="4", boxed=extracted,
                   answer=f"\\boxed{{{extracted}}}", finish_reason=finish,
                   stats={"completion_tokens": tokens, "reasoning_tokens": reasoning})


def test_maj_ties_go_to_the_shorter_reasoning_as_in_the_engine():
    samples = [_voted("p", 0, "5", False, tokens=900, reasoning=800),
               _voted("p", 1, "4", True, tokens=300, reasoning=200),
               _voted("p", 2, "5", False, tokens=900, reasoning=800),
               _voted("p", 3, "4", True, tokens=300, reasoning=200)]
    [section] = summarize(samples)["sections"]
    assert section["maj@4"]["correct"] == 1  # 2-2: the group that reasoned less wins


def test_vote_gain_is_paired_and_early_stop_is_replayed():
    # p1: 3 of 4 right, the 4th and longest is cut once 3 agree; p2: 1 of 4 right, maj wrong.
    samples = [_voted("p1", 0, "4", True, tokens=100), _voted("p1", 1, "4", True, tokens=110),
               _voted("p1", 2, "4", True, tokens=120), _voted("p1", 3, "6", False, tokens=500),
               _voted("p2", 0, "4", True, tokens=100), _voted("p2", 1, "7", False, tokens=100),
               _voted("p2", 2, "7", False, tokens=100), _voted("p2", 3, "8", False, tokens=100)]
    [section] = summarize(samples)["sections"]
    gain = section["maj_minus_pass1"]
    assert gain["difference"] == pytest.approx(((1 - 0.75) + (0 - 0.25)) / 2)
    assert gain["ci95"][0] < gain["difference"] < gain["ci95"][1]
    stop = section["early_stop"]
    assert stop["completion_tokens"] == 1230
    assert stop["with_early_stop"] == 1230 - (500 - 120)
    assert stop["samples_cancelled"] == 1 and stop["problems_stopped_early"] == 1
    assert stop["steps"] == 500 + 100 and stop["steps_with_early_stop"] == 120 + 100  # the longest cut
    text = format_report(summarize(samples))
    assert "maj@4 - pass@1" in text and "early stop" in text
