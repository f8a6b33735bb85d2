"""`vibe-edge bench`: the engine against llama-cpp-python's own Llama, in one run."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vibe_edge.bench.engine import (
    DEFAULT_DECODE_PAIRS,
    DEFAULT_DECODE_TOKENS,
    DEFAULT_ROUNDS,
    BenchConfig,
    format_report,
    run_benchmark,
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


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    tokens: Annotated[int, typer.Option(help="Tokens generated per stream.")] = DEFAULT_DECODE_TOKENS,
    rounds: Annotated[int, typer.Option(
        min=1, help="Rounds of the concurrent and TTFT-under-load measurements (medians).")] = DEFAULT_ROUNDS,
    pairs: Annotated[int, typer.Option(
        min=1, help="Alternating baseline/engine decode segments (median of paired ratios).")] = DEFAULT_DECODE_PAIRS,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
) -> None:
    """Measure decode speed against llama-cpp-python's Llama (same file, same threads),
    concurrent throughput at 1/2/4/8 streams, prefix-cache TTFT and p95 TTFT under load."""
    with cli_errors():
        settings = settings_from_flags(threads=threads, gpu_layers=gpu_layers, kv_type=kv_type)
        prepared = prepare_model(settings, model=model, slots=1)
        if prepared.resolved.notice:
            notify(prepared.resolved.notice)
        plan = prepared.plan
        cfg = BenchConfig(model_path=str(prepared.resolved.path), threads=plan.threads,
                          n_tokens=tokens, rounds=rounds, decode_pairs=pairs, flash_attn=plan.flash_attn, kv_type=plan.kv_type,
                          gpu_layers=plan.gpu_layers)
        report = run_benchmark(cfg, progress=lambda m: err_console.print(f"[dim]{m}[/]"))
        print(json.dumps(report, indent=2) if as_json else format_report(report))
