"""`vibe-edge bench`: the engine against llama-cpp-python's own Llama, in one run."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from vibe_edge.bench.engine import (
    DEFAULT_DECODE_PAIRS,
    DEFAULT_DECODE_TOKENS,
    DEFAULT_ROUNDS,
    BenchConfig,
    format_report,
    run_benchmark,
)
from vibe_edge.bench.samples import (
    DEFAULT_SAMPLE_COUNT,
    SamplesBenchConfig,
    format_samples_report,
    run_samples_benchmark,
)
from vibe_edge.bench.speculation import (
    CASES,
    DEFAULT_CASE_TOKENS,
    SAMPLINGS,
    SpecBenchConfig,
    format_spec_report,
    run_spec_benchmark,
)
from vibe_edge.cli.common import (
    GpuLayersOpt,
    KvTypeOpt,
    ModelOpt,
    ThreadsOpt,
    cli_errors,
    err_console,
    notify,
    settings_from_flags,
)
from vibe_edge.runtime import prepare_model
from vibe_edge.types import SpecConfig


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    tokens: Annotated[int, typer.Option(
        help="Tokens generated per stream (--suite samples: per sample).")] = DEFAULT_DECODE_TOKENS,
    rounds: Annotated[int, typer.Option(
        min=1, help="Rounds of the concurrent and TTFT-under-load measurements (medians).")] = DEFAULT_ROUNDS,
    pairs: Annotated[int, typer.Option(
        min=1, help="Alternating baseline/engine decode segments (median of paired ratios).")] = DEFAULT_DECODE_PAIRS,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
    suite: Annotated[str, typer.Option(
        help="engine: against llama-cpp-python (default); spec: speculative decoding on vs off; "
             "samples: n samples of one prompt vs one.")] = "engine",
    spec_tokens: Annotated[float, typer.Option(
        help="--suite spec: scale every case's output length (1: 384/512/256/160/256 tokens).")] = 1.0,
    spec_case: Annotated[Optional[list[str]], typer.Option(
        help="--suite spec: run only these cases (code_edit, math, prose, streams4, control; repeatable).")] = None,
    spec_sampling: Annotated[Optional[list[str]], typer.Option(
        help="--suite spec: greedy and/or math_preset (repeatable). Default: both.")] = None,
    samples: Annotated[int, typer.Option(
        min=2, help="--suite samples: how many samples the n side asks for.")] = DEFAULT_SAMPLE_COUNT,
) -> None:
    """Measure decode speed against llama-cpp-python's Llama (same file, same threads),
    concurrent throughput at 1/2/4/8 streams, prefix-cache TTFT and p95 TTFT under load; or,
    with --suite spec, speculative decoding against the engine without it; with --suite
    samples, the wall time of n samples of one prompt against one sample."""
    with cli_errors():
        if suite not in ("engine", "spec", "samples"):
            raise typer.BadParameter("--suite is engine, spec or samples")
        unknown = set(spec_case or ()) - set(CASES) | set(spec_sampling or ()) - set(SAMPLINGS)
        if unknown:
            raise typer.BadParameter(f"unknown spec case or sampling: {', '.join(sorted(unknown))}")
        settings = settings_from_flags(threads=threads, gpu_layers=gpu_layers, kv_type=kv_type)
        prepared = prepare_model(settings, model=model, slots=1)
        if prepared.resolved.notice:
            notify(prepared.resolved.notice)
        plan = prepared.plan
        if suite == "spec":
            spec_cfg = SpecBenchConfig(
                model_path=str(prepared.resolved.path), threads=plan.threads, gpu_layers=plan.gpu_layers,
                flash_attn=plan.flash_attn, kv_type=plan.kv_type, rounds=rounds,
                tokens={k: max(8, int(v * spec_tokens)) for k, v in DEFAULT_CASE_TOKENS.items()},
                cases=tuple(spec_case or CASES), samplings=tuple(spec_sampling or SAMPLINGS),
                spec=SpecConfig(enabled=True, max_draft=settings.spec_max_draft, ngram_min=settings.spec_ngram_min,
                                ngram_max=settings.spec_ngram_max, batch_tokens=plan.spec_batch_tokens))
            report = run_spec_benchmark(spec_cfg, progress=lambda m: err_console.print(f"[dim]{m}[/]"))
            print(json.dumps(report, indent=2) if as_json else format_spec_report(report))
            return
        if suite == "samples":
            samples_cfg = SamplesBenchConfig(
                model_path=str(prepared.resolved.path), threads=plan.threads, gpu_layers=plan.gpu_layers,
                flash_attn=plan.flash_attn, kv_type=plan.kv_type, samples=samples, tokens=tokens,
                rounds=rounds)
            report = run_samples_benchmark(samples_cfg, progress=lambda m: err_console.print(f"[dim]{m}[/]"))
            print(json.dumps(report, indent=2) if as_json else format_samples_report(report))
            return
        cfg = BenchConfig(model_path=str(prepared.resolved.path), threads=plan.threads,
                          n_tokens=tokens, rounds=rounds, decode_pairs=pairs, flash_attn=plan.flash_attn, kv_type=plan.kv_type,
                          gpu_layers=plan.gpu_layers)
        report = run_benchmark(cfg, progress=lambda m: err_console.print(f"[dim]{m}[/]"))
        print(json.dumps(report, indent=2) if as_json else format_report(report))
