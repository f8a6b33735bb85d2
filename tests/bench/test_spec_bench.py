"""`vibe-edge bench --suite spec` end to end on the demo model, at a tiny size: the report has
every case paired on/off, and none drafting in the control. (Whether a case drafts depends on
the step costs this host measures for the demo model; the engine's and the scheduler's tests pin
the drafting down on given costs.)"""

from vibe_edge.bench.speculation import SpecBenchConfig, format_spec_report, run_spec_benchmark


def test_spec_bench_pairs_each_case_and_the_control_never_drafts(demo_model):
    cfg = SpecBenchConfig(model_path=str(demo_model), rounds=1, samplings=("greedy",),
                          cases=("code_edit", "streams4", "control"),
                          tokens={"code_edit": 48, "math": 8, "prose": 8, "streams4": 12, "control": 8})
    report = run_spec_benchmark(cfg)
    cases = {c["case"]: c for c in report["cases"]}
    assert set(cases) == {"code_edit", "streams4", "control"}
    for case in cases.values():
        assert case["tps_on"] > 0 and case["tps_off"] > 0 and case["ratio"] > 0
    assert cases["control"]["drafted"] == 0  # off on both sides: the noise floor
    text = format_spec_report(report)
    assert "code_edit" in text and "streams4" in text
