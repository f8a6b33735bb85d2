"""`vibe-edge doctor`: what this machine has, and the plan the engine will use on it."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from vibe_edge.cli.common import (
    CtxOpt,
    GpuLayersOpt,
    KvTypeOpt,
    ModelOpt,
    SlotsOpt,
    ThreadsOpt,
    cli_errors,
    console,
    settings_from_flags,
)
from vibe_edge.errors import ModelNotFound
from vibe_edge.hardware import HardwareInfo, check_fits, detect_hardware, format_plan, llama_build_status, make_plan
from vibe_edge.modelfile import inspect_gguf
from vibe_edge.registry import resolve_model


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    hardware_file: Annotated[Optional[str], typer.Option(
        "--hardware", help="Plan for a hardware description (JSON from `doctor --json`) "
                           "instead of this machine.")] = None,
    slots: SlotsOpt = None,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
    cpuinfo: Annotated[Optional[str], typer.Option(
        "--cpuinfo", help="Check the installed llama.cpp build against another machine's "
                          "/proc/cpuinfo (would this environment run there?).")] = None,
) -> None:
    """Detect cores, CPU features, RAM and GPUs, and print the plan: threads, GPU layers,
    slots, context per slot, KV cache type and the quantization to prefer, each with a reason."""
    with cli_errors():
        settings = settings_from_flags(slots=slots, ctx=ctx, threads=threads,
                                       gpu_layers=gpu_layers, kv_type=kv_type)
        if hardware_file:
            with open(hardware_file, encoding="utf-8") as fh:
                hw = HardwareInfo.from_dict(json.load(fh))
        else:
            hw = detect_hardware()
        facts = None
        model_note = None
        try:
            resolved = resolve_model(model if model is not None else settings.model,
                                     settings.resolved_models_dir)
            facts = inspect_gguf(resolved.path)
        except ModelNotFound as exc:
            if model is not None:
                raise
            model_note = f"no model found ({exc.message}); planning for VibeThinker-1.5B's shape"
        plan = make_plan(hw, facts, **settings.plan_overrides())
        fits_error = None
        try:
            check_fits(plan)
        except Exception as exc:  # PlanError: report it, doctor's job is to explain
            fits_error = str(exc)
        build = llama_build_status(cpuinfo)
        if as_json:
            print(json.dumps({"hardware": hw.to_dict(), "plan": plan.to_dict(), "build": build,
                              "model": facts.to_dict() if facts else None,
                              "fits": fits_error is None, "fit_error": fits_error,
                              "settings": {n: str(v) for n, v, _ in settings.describe()}},
                             indent=2, default=str))
        else:
            if model_note:
                console.print(f"[cyan]note:[/] {model_note}")
            print(format_plan(plan, hw))
            _print_build(build)
            if fits_error:
                console.print(f"[bold red]does not fit:[/] {fits_error}")
        if fits_error or build.get("status") == "error":
            raise typer.Exit(1)


def _print_build(build: dict) -> None:
    compiled = " ".join(build.get("compiled") or ()) or "unknown"
    made = f" ({build['mode']} build)" if build.get("mode") else ""
    check = (build.get("self_check") or {}).get("detail")
    status = build.get("status")
    verdict = f"; {build['message']}" if status == "ok" else ""
    console.print(f"llama.cpp build{made}: {compiled}{verdict}" + (f" ({check})" if check else ""))
    if status == "error":
        console.print(f"[bold red]error:[/] {build['message']}")
    elif status == "warning":
        console.print(f"[yellow]warning:[/] {build['message']}")
    elif status == "unknown":
        console.print(f"[yellow]note:[/] {build['message']}")
