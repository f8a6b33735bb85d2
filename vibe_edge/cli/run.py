"""`vibe-edge run "prompt"`: one answer streamed in the terminal, like `ollama run`.

Reasoning is printed dimmed as it streams, then the answer, then the figures. Ctrl-C stops the
generation and keeps what was printed.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from vibe_edge.cli.common import (
    CtxOpt,
    GpuLayersOpt,
    KvTypeOpt,
    ModelOpt,
    ThreadsOpt,
    cli_errors,
    notify,
    settings_from_flags,
)
from vibe_edge.engine import Finished, GenerationRequest, GenerationResult, Notice, TextDelta
from vibe_edge.requests import Limits, Overrides, build_request
from vibe_edge.runtime import open_engine
from vibe_edge.settings import Settings

DIM, BOLD, RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    prompt: Annotated[str, typer.Argument(help="The question. Use - to read it from standard input.")],
    model: ModelOpt = None,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", "-p", help="math, code or general: system prompt and sampling.")] = None,
    system: Annotated[Optional[str], typer.Option(help="Your own system prompt (replaces the preset's).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Most tokens to generate (thinking included).")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature; 0 is greedy.")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Nucleus sampling threshold.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed, for repeatable answers.")] = None,
    thinking_budget: Annotated[Optional[int], typer.Option(
        help="Close the thinking after this many tokens and make the model answer (0: no thinking, -1: no budget).")] = None,
    loop_guard: Annotated[Optional[bool], typer.Option(
        "--loop-guard/--no-loop-guard", help="End thinking that repeats itself.")] = None,
    hide_thinking: Annotated[bool, typer.Option(help="Do not print the reasoning, only the answer.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON at the end.")] = False,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
) -> None:
    """Answer one prompt, streaming the reasoning (dimmed) and the answer."""
    with cli_errors():
        if prompt == "-":
            prompt = sys.stdin.read()
        settings = settings_from_flags(ctx=ctx, threads=threads, gpu_layers=gpu_layers,
                                       kv_type=kv_type, thinking_budget=thinking_budget,
                                       loop_guard=loop_guard, preset=preset)
        overrides = Overrides(system_prompt=system, max_tokens=max_tokens, temperature=temperature,
                              top_p=top_p, seed=seed)
        run_request(prompt, settings, overrides, ctx_per_slot=None)  # bad values fail before loading
        # One answer needs one slot: the plan then gives it the whole context budget.
        engine = open_engine(settings, model=model, notify=notify, slots=1)
        try:
            request = run_request(prompt, settings, overrides, ctx_per_slot=engine.info.ctx_per_slot)
            result = _stream(engine.submit(request), hide_thinking=hide_thinking)
        finally:
            engine.close()
        if as_json:
            print(json.dumps(_result_dict(result), ensure_ascii=False, indent=2))
        if result.finish_reason.value == "error":
            raise typer.Exit(1)


def run_request(prompt: str, settings: Settings, overrides: Overrides, *,
                ctx_per_slot: int | None) -> GenerationRequest:
    """`run`'s request: the prompt as one user message, the settings' preset, thinking budget
    and loop guard as defaults, the command's flags as overrides."""
    return build_request(settings.preset, messages=[{"role": "user", "content": prompt}],
                         overrides=overrides,
                         defaults=Overrides(thinking_budget=settings.thinking_budget,
                                            loop_guard=settings.loop_guard),
                         limits=Limits(ctx_per_slot=ctx_per_slot, max_tokens=settings.max_tokens))


def _stream(handle, *, hide_thinking: bool) -> GenerationResult:
    tty = sys.stdout.isatty()
    out = sys.stdout
    channel = None
    try:
        for event in handle:
            if isinstance(event, TextDelta):
                if event.channel == "reasoning" and hide_thinking:
                    continue
                if event.channel != channel:
                    if channel == "reasoning":
                        out.write((RESET if tty else "") + "\n\n")
                    if event.channel == "reasoning":
                        out.write(DIM if tty else "[thinking]\n")
                    channel = event.channel
                out.write(event.text)
                out.flush()
            elif isinstance(event, Notice):
                notify(event.message)
            elif isinstance(event, Finished):
                break
    except KeyboardInterrupt:
        handle.cancel()
    result = handle.result()
    if tty and channel == "reasoning":
        out.write(RESET)
    out.write("\n")
    _print_figures(result, tty)
    return result


def _print_figures(result: GenerationResult, tty: bool) -> None:
    s = result.stats
    err = sys.stderr
    if result.boxed is not None:
        err.write(f"{BOLD if tty else ''}answer: {result.boxed}{RESET if tty else ''}\n")
    parts = [f"{s.prompt_tokens} prompt tokens ({s.cached_tokens} cached)"]
    if s.ttft_ms is not None:
        parts.append(f"TTFT {s.ttft_ms:.0f} ms")
    if s.prefill_tps:
        parts.append(f"prefill {s.prefill_tps:.1f} tok/s")
    if s.decode_tps:
        parts.append(f"decode {s.decode_tps:.1f} tok/s")
    parts.append(f"{s.reasoning_tokens} thinking + {s.answer_tokens} answer tokens")
    finish = result.finish_reason.value
    if result.reasoning_end is not None and result.reasoning_end.value != "model":
        finish += f" (thinking closed by {result.reasoning_end.value})"
    parts.append(f"finished: {finish}")
    if result.error:
        parts.append(f"error: {result.error}")
    err.write((DIM if tty else "") + " · ".join(parts) + (RESET if tty else "") + "\n")


def _result_dict(result: GenerationResult) -> dict:
    return {
        "id": result.request_id,
        "reasoning": result.reasoning,
        "answer": result.answer,
        "boxed": result.boxed,
        "finish_reason": result.finish_reason.value,
        "reasoning_end": result.reasoning_end.value if result.reasoning_end else None,
        "stats": result.stats.to_dict(),
        "error": result.error,
    }
