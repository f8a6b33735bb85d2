"""`vibe-edge run "prompt"`: one answer streamed in the terminal, like `ollama run`.

Reasoning is printed dimmed as it streams, then the answer, then the figures. Ctrl-C stops the
generation and keeps what was printed.

`--samples K` runs K samples of the prompt side by side (one prefill, K slots), one progress
line each (tokens, state, answer), then the first sample's answer; `--vote` takes the majority
answer instead and prints the tally (engine/samples.py has the rules).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Optional

import typer

from vibe_edge.cli.common import (
    CtxOpt,
    GpuLayersOpt,
    KvTypeOpt,
    SpecOpt,
    ModelOpt,
    ThreadsOpt,
    cli_errors,
    notify,
    settings_from_flags,
)
from vibe_edge.engine import (
    Finished,
    GenerationRequest,
    GenerationResult,
    Notice,
    SampleFinished,
    Started,
    TextDelta,
)
from vibe_edge.defaults import MAX_SAMPLES
from vibe_edge.requests import Limits, Overrides, build_request
from vibe_edge.runtime import open_engine
from vibe_edge.settings import Settings

DIM, BOLD, RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"
REDRAW_S = 0.1  # the sample lines are redrawn at most this often (a terminal cannot keep up more)


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
    samples: Annotated[int, typer.Option(
        "--samples", "-k", min=1, max=MAX_SAMPLES,
        help="Run K samples of the prompt side by side (the prompt is evaluated once).")] = 1,
    vote: Annotated[bool, typer.Option(
        help="With --samples: take the majority answer, stopping samples that can no longer change it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON at the end.")] = False,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Answer one prompt, streaming the reasoning (dimmed) and the answer."""
    with cli_errors():
        if prompt == "-":
            prompt = sys.stdin.read()
        settings = settings_from_flags(ctx=ctx, threads=threads, gpu_layers=gpu_layers,
                                       kv_type=kv_type, thinking_budget=thinking_budget,
                                       loop_guard=loop_guard, preset=preset, spec=spec)
        overrides = Overrides(system_prompt=system, max_tokens=max_tokens, temperature=temperature,
                              top_p=top_p, seed=seed)
        run_request(prompt, settings, overrides, ctx_per_slot=None)  # bad values fail before loading
        # One answer needs one slot: the plan then gives it the whole context budget; K samples
        # need K slots at once.
        engine = open_engine(settings, model=model, notify=notify, slots=samples)
        try:
            request = run_request(prompt, settings, overrides, ctx_per_slot=engine.info.ctx_per_slot)
            request.n, request.vote = samples, vote
            handle = engine.submit(request)
            result = (_stream(handle, hide_thinking=hide_thinking) if samples == 1
                      else _stream_samples(handle, samples))
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


class _SampleLines:
    """One line per sample: redrawn in place on a terminal, else printed as each ends."""

    def __init__(self, n: int, tty: bool):
        self.n, self.tty = n, tty
        self.tokens = [0] * n
        self.state = ["queued"] * n
        self.answer: list[str | None] = [None] * n
        self.drawn = False
        self.last = 0.0

    def line(self, i: int) -> str:
        answer = self.answer[i] if self.answer[i] is not None else "-"
        return f"sample {i}: {self.tokens[i]:>6} tokens  {self.state[i]:<10} answer: {answer}"

    def update(self, event: object) -> None:
        i = getattr(event, "sample", 0)
        if isinstance(event, Started):
            self.state[i] = "prefill" if i == 0 else "waiting"
        elif isinstance(event, TextDelta):
            self.tokens[i] += 1  # about one delta per token; the exact count comes at the end
            self.state[i] = "thinking" if event.channel == "reasoning" else "answering"
        elif isinstance(event, SampleFinished):
            stats = event.result.stats
            self.tokens[i] = stats.completion_tokens
            self.state[i] = event.result.finish_reason.value
            self.answer[i] = event.result.boxed
            if not self.tty:
                print(self.line(i), flush=True)
        if self.tty:
            self.draw(force=isinstance(event, (Started, SampleFinished)))

    def draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < REDRAW_S:
            return
        self.last = now
        out = sys.stdout
        if self.drawn:
            out.write(f"\x1b[{self.n}F")  # back to the first sample's line
        out.write("".join(f"\x1b[2K{self.line(i)}\n" for i in range(self.n)))
        out.flush()
        self.drawn = True


def _stream_samples(handle, n: int) -> GenerationResult:
    lines = _SampleLines(n, sys.stdout.isatty())
    try:
        for event in handle:
            if isinstance(event, Notice):
                if event.sample == 0 or event.code != "cjk_prompt":
                    notify(f"sample {event.sample}: {event.message}")
            elif isinstance(event, Finished):
                break
            else:
                lines.update(event)
    except KeyboardInterrupt:
        handle.cancel()
    result = handle.result()
    if lines.tty:
        lines.draw(force=True)
    tty = lines.tty
    vote = result.vote
    if vote is not None:
        if vote.winner is None:
            print("no sample gave an answer: no winner")
        else:
            print(f"{BOLD if tty else ''}winner: {vote.winner.answer}{RESET if tty else ''} "
                  f"({vote.winner.votes} of {n} votes: samples {', '.join(map(str, vote.winner.samples))})")
        tally = ", ".join(f"{g.answer}: {g.votes}" for g in vote.groups) or "none"
        extra = [f"{len(vote.answers) - sum(a is not None for a in vote.answers)} without an answer"]
        if vote.early_stopped:
            extra.append(f"stopped early: {', '.join(map(str, vote.early_stopped))}")
        print(f"tally: {tally} ({'; '.join(extra)})")
    print(f"\n{result.answer}")
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
    if s.acceptance is not None:
        parts.append(f"drafted {s.draft_tokens}, accepted {s.accepted_tokens} ({100 * s.acceptance:.0f}%)")
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
        **({"sample": result.sample, "samples": [_result_dict(s) for s in result.samples]}
           if result.samples else {}),
        **({"vote": result.vote.to_dict()} if result.vote is not None else {}),
    }
