"""`vibe-edge bench --suite spec`: the engine with speculative decoding against itself without.

One engine, one model; every case runs with `speculative=True` and `speculative=False` per
request, in alternating order round by round (the host's speed drifts: a pair run back to back
shares the drift), and the ratio of each case is the median of its per-round ratios of decode
speed (completion tokens over the time from the first token to the last).

Cases (targets from issue 14, single stream unless said):
- code_edit: a vibe-edge module (text/loop_guard.py) asked back with one rename: >= 1.5x;
- math: a MATH-500 problem solved step by step: reported;
- prose: a story, nothing to copy: >= 0.97x (speculation must not cost where it cannot help);
- streams4: four prose streams at once, aggregate tokens/s: >= 0.97x;
- control: prose with speculation off on BOTH sides of each pair: no code differs, so its
  ratios show how far the host's drift alone moves a ratio (the noise floor of the others).
Each case runs greedy and at the math preset's sampling (seeded).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from vibe_edge.engine import Engine, EngineConfig, GenerationRequest, SamplingParams, SpecConfig
from vibe_edge.presets import get_preset

__all__ = ["CASES", "DEFAULT_CASE_TOKENS", "SAMPLINGS", "SpecBenchConfig", "format_spec_report",
           "run_spec_benchmark"]

DEFAULT_SPEC_ROUNDS = 2
TARGETS = {"code_edit": 1.5, "prose": 0.97, "streams4": 0.97}
CASES = ("code_edit", "math", "prose", "streams4", "control")
SAMPLINGS = ("greedy", "math_preset")
DEFAULT_CASE_TOKENS = {"code_edit": 384, "math": 512, "prose": 256, "streams4": 160, "control": 256}
"""Output tokens per case (streams4: each of the four streams)."""


@dataclass(frozen=True)
class SpecBenchConfig:
    model_path: str
    threads: int | None = None
    gpu_layers: int = 0
    flash_attn: bool = True
    kv_type: str = "f16"
    rounds: int = DEFAULT_SPEC_ROUNDS
    tokens: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CASE_TOKENS))
    spec: SpecConfig = SpecConfig()
    samplings: tuple[str, ...] = SAMPLINGS
    cases: tuple[str, ...] = CASES


def _source_module() -> str:
    return (resources.files("vibe_edge") / "text" / "loop_guard.py").read_text(encoding="utf-8")


def _math_problem() -> str:
    return ("How many vertical asymptotes does the graph of $y=\\frac{2}{x^2+x-6}$ have? "
            "Solve it step by step, and put the final answer in \\boxed{}.")


def _cases() -> dict[str, list[dict]]:
    code = _source_module()
    edit = ("Here is a Python module:\n\n```python\n" + code + "```\n\n"
            "Rename the class LoopGuard to RepetitionGuard everywhere and give me the whole "
            "module back, nothing else.")
    prose = "Write a short story about a lighthouse keeper who finds a message in a bottle."
    return {
        "code_edit": [{"role": "user", "content": edit}],
        "math": [{"role": "user", "content": _math_problem()}],
        "prose": [{"role": "user", "content": prose}],
        "streams4": [{"role": "user", "content": prose}],
        "control": [{"role": "user", "content": prose}],
    }


def _sampling(kind: str) -> SamplingParams:
    if kind == "greedy":
        return SamplingParams(temperature=0.0)
    base = get_preset("math").sampling
    return SamplingParams(temperature=base.temperature, top_p=base.top_p, top_k=base.top_k,
                          min_p=base.min_p, seed=1234)


def _run(engine: Engine, messages: list[dict], sampling: SamplingParams, n_tokens: int,
         streams: int, speculative: bool) -> dict:
    """Decode tokens/s (aggregate over streams) and draft counts of one case, one setting."""
    start = time.perf_counter()
    handles = [engine.submit(GenerationRequest(messages=messages, sampling=sampling, max_tokens=n_tokens,
                                               speculative=speculative)) for _ in range(streams)]
    results = [h.result() for h in handles]
    wall = time.perf_counter() - start
    tokens = sum(r.stats.completion_tokens for r in results)
    first = min((r.stats.ttft_ms or 0.0) for r in results) / 1000
    drafted = sum(r.stats.draft_tokens for r in results)
    accepted = sum(r.stats.accepted_tokens for r in results)
    return {"tokens": tokens, "tps": tokens / max(1e-9, wall - first), "drafted": drafted,
            "accepted": accepted}


def run_spec_benchmark(cfg: SpecBenchConfig, progress: Callable[[str], None] = lambda _m: None) -> dict:
    cases = {name: messages for name, messages in _cases().items() if name in cfg.cases}
    ctx = 4096
    engine = Engine(EngineConfig(model_path=cfg.model_path, n_slots=4, ctx_per_slot=ctx, threads=cfg.threads,
                                 threads_batch=cfg.threads, gpu_layers=cfg.gpu_layers,
                                 flash_attn=cfg.flash_attn, kv_type=cfg.kv_type,
                                 spec=SpecConfig(enabled=True, max_draft=cfg.spec.max_draft,
                                                 ngram_min=cfg.spec.ngram_min, ngram_max=cfg.spec.ngram_max,
                                                 batch_tokens=cfg.spec.batch_tokens)))
    report: dict = {"model": Path(cfg.model_path).name, "rounds": cfg.rounds, "spec": vars(cfg.spec),
                    "cases": []}
    try:
        for kind in cfg.samplings:
            sampling = _sampling(kind)
            for name, messages in cases.items():
                streams = 4 if name == "streams4" else 1
                n_tokens = cfg.tokens[name]
                ratios, runs = [], {True: [], False: []}
                for r in range(cfg.rounds):
                    order = (True, False) if r % 2 == 0 else (False, True)
                    got = {}
                    for speculative in order:
                        progress(f"{kind} {name}: round {r + 1}/{cfg.rounds}, speculation "
                                 f"{'on' if speculative else 'off'}")
                        got[speculative] = _run(engine, messages, sampling, n_tokens, streams,
                                                speculative and name != "control")
                        runs[speculative].append(got[speculative])
                    ratios.append(got[True]["tps"] / got[False]["tps"])
                drafted = sum(x["drafted"] for x in runs[True])
                accepted = sum(x["accepted"] for x in runs[True])
                report["cases"].append({
                    "case": name, "sampling": kind, "streams": streams, "tokens": n_tokens,
                    "tps_on": statistics.median(x["tps"] for x in runs[True]),
                    "tps_off": statistics.median(x["tps"] for x in runs[False]),
                    "ratio": statistics.median(ratios), "ratios": [round(x, 3) for x in ratios],
                    "drafted": drafted, "accepted": accepted,
                    "acceptance": accepted / drafted if drafted else None,
                    "target": TARGETS.get(name),
                })
    finally:
        engine.close()
    return report


def format_spec_report(report: dict) -> str:
    lines = [f"speculative decoding, {report['model']}: on vs off, median of {report['rounds']} paired rounds",
             f"{'case':<10} {'sampling':<12} {'off tok/s':>9} {'on tok/s':>9} {'ratio':>6} "
             f"{'target':>7} {'accept':>7}"]
    for c in report["cases"]:
        target = c["target"]
        verdict = "" if target is None else (" met" if c["ratio"] >= target else " MISSED")
        accept = "-" if c["acceptance"] is None else f"{100 * c['acceptance']:.0f}%"
        lines.append(f"{c['case']:<10} {c['sampling']:<12} {c['tps_off']:>9.2f} {c['tps_on']:>9.2f} "
                     f"{c['ratio']:>6.2f} {'' if target is None else f'>={target}':>7} {accept:>7}{verdict}")
    return "\n".join(lines)
