"""`vibe-edge bench --suite samples`: what n samples of one prompt cost against one sample.

Issue 13's cost target: n = 4 samples of one prompt take at most 2.5x the wall time of one
sample on the 2-core machine (four requests one after another would take 4x, plus three more
prefills). The saving has two sources, and the report shows both: the prompt is evaluated once
(its KV copied to the other samples' slots, so `prompt_evaluated` is the same for 1 and n), and
the n samples decode together in one batch per step.

Method: one engine with n slots; each round runs the same problem as one request with n=1 and
one with n samples, the order flipping round by round (the host's speed drifts; a pair run back
to back shares the drift). Every run gets its own prompt (a run number at the start of the
problem), so the prefix cache cannot serve one run's prompt from the one before; end-of-
generation tokens are banned, so every sample generates exactly `tokens` tokens and the two
sides do the same work per sample. Sampling is the math preset's (seeded), without a vote (a
vote's early stop would cut the work this measures; docs/BENCHMARKS.md says what it saves).
The cost ratio is the median of the per-round ratios of wall time (submission to the last
sample's end).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vibe_edge.engine import Engine, EngineConfig, GenerationRequest, SpecConfig
from vibe_edge.requests import Overrides, build_request

__all__ = ["DEFAULT_SAMPLE_COUNT", "DEFAULT_SAMPLE_TOKENS", "SamplesBenchConfig",
           "format_samples_report", "run_samples_benchmark"]

DEFAULT_SAMPLE_COUNT = 4
DEFAULT_SAMPLE_TOKENS = 256
DEFAULT_SAMPLES_ROUNDS = 3
TARGET_COST = 2.5  # n=4 wall time / n=1 wall time, at most (issue 13)

# A GSM8K-style problem of typical length (about 100 prompt tokens with the math preset's
# instruction): long enough that evaluating it four times would show.
PROBLEM = ("A bakery sells muffins in boxes of 6 and cookies in boxes of 8. On Monday it sold "
           "14 boxes of muffins and some boxes of cookies, 196 items in all. On Tuesday it sold "
           "twice as many boxes of cookies as on Monday and 5 fewer boxes of muffins. How many "
           "items did it sell on Tuesday? Explain each step.")


@dataclass(frozen=True)
class SamplesBenchConfig:
    model_path: str
    threads: int | None = None
    gpu_layers: int = 0
    flash_attn: bool = True
    kv_type: str = "f16"
    samples: int = DEFAULT_SAMPLE_COUNT
    tokens: int = DEFAULT_SAMPLE_TOKENS
    rounds: int = DEFAULT_SAMPLES_ROUNDS


def _request(run: int, n: int, no_end: dict[int, float], tokens: int) -> GenerationRequest:
    """The math preset's request (its prompts and sampling, seeded), through the one request
    policy every surface uses, with the end-of-generation tokens banned."""
    request = build_request("math", messages=[{"role": "user", "content": f"(Run {run}.) {PROBLEM}"}],
                            overrides=Overrides(seed=1234, logit_bias=no_end, max_tokens=tokens,
                                                speculative=False))
    request.n = n
    return request


def _run(engine: Engine, run: int, n: int, no_end: dict[int, float], tokens: int) -> dict:
    start = time.perf_counter()
    result = engine.submit(_request(run, n, no_end, tokens)).result()
    wall = time.perf_counter() - start
    samples = result.samples or [result]
    return {
        "wall_s": wall,
        "completion_tokens": sum(s.stats.completion_tokens for s in samples),
        "prompt_tokens": samples[0].stats.prompt_tokens,
        # What prefill actually computed, over all samples: the copies evaluate nothing.
        "prompt_evaluated": sum(s.stats.prompt_tokens - s.stats.cached_tokens for s in samples),
        "ttft_ms": samples[0].stats.ttft_ms,
    }


def run_samples_benchmark(cfg: SamplesBenchConfig,
                          progress: Callable[[str], None] = lambda _m: None) -> dict:
    if cfg.samples < 2:
        raise ValueError("the samples benchmark compares n >= 2 samples with one")
    engine = Engine(EngineConfig(
        model_path=cfg.model_path, n_slots=cfg.samples, ctx_per_slot=max(1024, cfg.tokens + 512),
        threads=cfg.threads, threads_batch=cfg.threads, gpu_layers=cfg.gpu_layers,
        flash_attn=cfg.flash_attn, kv_type=cfg.kv_type,
        spec=SpecConfig(enabled=False)))  # plain decoding on both sides
    runs: dict[int, list[dict]] = {1: [], cfg.samples: []}
    ratios = []
    try:
        no_end = {t: -100.0 for t in engine.eog_tokens()}
        run_number = 0
        for r in range(cfg.rounds):
            order = (1, cfg.samples) if r % 2 == 0 else (cfg.samples, 1)
            got = {}
            for n in order:
                run_number += 1
                progress(f"round {r + 1}/{cfg.rounds}: n={n}, {cfg.tokens} tokens per sample")
                got[n] = _run(engine, run_number, n, no_end, cfg.tokens)
                runs[n].append(got[n])
            ratios.append(got[cfg.samples]["wall_s"] / got[1]["wall_s"])
    finally:
        engine.close()

    def side(n: int) -> dict:
        rs = runs[n]
        return {
            "n": n,
            "wall_s": statistics.median(x["wall_s"] for x in rs),
            "completion_tokens": rs[0]["completion_tokens"],
            "prompt_tokens": rs[0]["prompt_tokens"],
            "prompt_evaluated": statistics.median(x["prompt_evaluated"] for x in rs),
            "aggregate_tps": statistics.median(x["completion_tokens"] / x["wall_s"] for x in rs),
        }

    one, many = side(1), side(cfg.samples)
    cost = statistics.median(ratios)
    return {
        "model": Path(cfg.model_path).name, "rounds": cfg.rounds, "samples": cfg.samples,
        "tokens": cfg.tokens, "one": one, "many": many,
        "cost": cost, "costs": [round(x, 3) for x in ratios],
        # n requests one after another: n times the wall of one (each with its own prefill).
        "sequential_cost": float(cfg.samples),
        "target": TARGET_COST if cfg.samples == DEFAULT_SAMPLE_COUNT else None,
    }


def format_samples_report(report: dict) -> str:
    one, many, n = report["one"], report["many"], report["samples"]
    target = report["target"]
    verdict = "" if target is None else (
        f"  (target <= {target}: {'met' if report['cost'] <= target else 'MISSED'})")
    return "\n".join([
        f"n={n} samples vs one, {report['model']}: {report['tokens']} tokens per sample, "
        f"median of {report['rounds']} paired rounds",
        f"  n=1: {one['wall_s']:.1f} s, {one['aggregate_tps']:.2f} tok/s, prompt {one['prompt_tokens']} "
        f"tokens, {one['prompt_evaluated']:.0f} evaluated",
        f"  n={n}: {many['wall_s']:.1f} s, {many['aggregate_tps']:.2f} tok/s aggregate, "
        f"{many['prompt_evaluated']:.0f} prompt tokens evaluated for all {n}",
        f"  cost n={n} / n=1: {report['cost']:.2f}x (rounds: "
        f"{', '.join(f'{c:.2f}' for c in report['costs'])}); {n} one after another: "
        f"{report['sequential_cost']:.0f}x{verdict}",
    ])
