"""`vibe-edge eval`: accuracy on GSM8K, MATH-500, HumanEval or your own set, on this machine.

    vibe-edge eval --task gsm8k --limit 200 --out gsm8k.jsonl      run, grade, report
    vibe-edge eval --task gsm8k --limit 200 --out gsm8k.jsonl --resume
    vibe-edge eval --report gsm8k.jsonl                             the report of a results file
    vibe-edge eval --grade preds.jsonl [--task math500]             grade another system's outputs
    vibe-edge eval --compare a.jsonl b.jsonl                        paired A-vs-B difference

Thin: parsing and printing here, the work in vibe_edge.eval.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from vibe_edge.defaults import UNLIMITED_THINKING
from vibe_edge.presets import get_preset
from vibe_edge.cli.common import (
    CtxOpt,
    GpuLayersOpt,
    KvTypeOpt,
    ModelOpt,
    SlotsOpt,
    ThreadsOpt,
    cli_errors,
    err_console,
    notify,
    settings_from_flags,
)
from vibe_edge.eval.datasets import load_task, select_problems
from vibe_edge.eval.predictions import grade_predictions
from vibe_edge.eval.prompts import DEFAULT_DEADLINE_S, RequestPlan
from vibe_edge.eval.report import compare, format_comparison, format_report, summarize
from vibe_edge.eval.results import ResultsWriter, read_results
from vibe_edge.eval.runner import EvalProgress, EvalRun, plan_work, run_eval
from vibe_edge.eval.sandbox import DEFAULT_WALL_S, SandboxLimits, probe_isolation
from vibe_edge.eval.types import EvalError
from vibe_edge.runtime import open_engine

# What must agree between a results file and a run that resumes it.
RESUME_MUST_MATCH = ("task", "model", "preset", "temperature", "seed", "max_tokens")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def parse_budgets(text: str | None) -> list[int | None]:
    """"512,2048,8192" -> [512, 2048, 8192]; None -> [None] (the preset's budget)."""
    if text is None:
        return [None]
    budgets: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise EvalError(f"--thinking-budget takes integers separated by commas, got {part!r}",
                            hint="e.g. --thinking-budget 512,2048,8192 (0: no thinking, -1: no budget)") from None
        if value < UNLIMITED_THINKING:
            raise EvalError(f"a thinking budget must be >= -1, got {value}")
        if value in budgets:
            continue
        budgets.append(value)
    return budgets


def eval_command(
    task: Annotated[Optional[str], typer.Option(
        "--task", help="gsm8k, math500, humaneval, or jsonl:PATH (lines with \"problem\" and \"answer\").")] = None,
    model: ModelOpt = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N problems (after --shuffle).")] = None,
    shuffle: Annotated[bool, typer.Option(help="Pick the problems at random (seeded by --seed).")] = False,
    seed: Annotated[int, typer.Option(help="Seeds the subset and every sample's sampling.")] = 0,
    samples: Annotated[int, typer.Option(
        min=1, help="Samples per problem: reports pass@1 (mean), maj@K and pass@K.")] = 1,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", "-p", help="math, code or general. Default: math, or code for humaneval.")] = None,
    thinking_budget: Annotated[Optional[str], typer.Option(
        help="One budget or a list (512,2048,8192) to trace accuracy against it; 0: no thinking, -1: no budget.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Most tokens per sample. Default: the preset's.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Override the preset's temperature (0: greedy).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write every sample (prompt, output, answer, verdict) to this JSONL file.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out: skip the samples it holds.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    grade: Annotated[Optional[Path], typer.Option(
        "--grade", help="Grade a JSONL of predictions ({id|answer, prediction}) without a model.")] = None,
    report: Annotated[Optional[Path], typer.Option(
        "--report", help="Print the report of an existing results file.")] = None,
    compare_files: Annotated[Optional[tuple[Path, Path]], typer.Option(
        "--compare", help="Two results files (A B): paired difference and McNemar's test.")] = None,
    code_timeout: Annotated[float, typer.Option(
        help="Seconds a code sample may run against its tests (wall clock).")] = DEFAULT_WALL_S,
    slots: SlotsOpt = None,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
) -> None:
    """Run a model on an evaluation set and report what it gets right, with 95% intervals."""
    with cli_errors():
        if compare_files is not None and all(compare_files):
            _compare(compare_files[0], compare_files[1], as_json)
            return
        if report is not None:
            results = read_results(report)
            _print_report(summarize(results.samples, results.runs, results.ends), as_json)
            return
        limits = SandboxLimits(wall_s=code_timeout, cpu_s=max(1, int(code_timeout)))
        if grade is not None:
            chosen = load_task(task) if task else None
            records = grade_predictions(grade, chosen, limits=limits)
            if out is not None:
                _refuse_existing(out, resume=False)
                with ResultsWriter(out) as writer:
                    writer.write_all(records)
            _print_report(summarize(records), as_json)
            return
        if task is None:
            raise EvalError("say which set to run: --task gsm8k|math500|humaneval|jsonl:PATH",
                            hint="or --grade FILE, --report FILE, --compare A B")
        if resume and out is None:
            raise EvalError("--resume needs --out: the results file to continue")
        budgets = parse_budgets(thinking_budget)
        chosen_task = load_task(task)
        problems = select_problems(chosen_task.problems, limit=limit, shuffle=shuffle, seed=seed)
        chosen_preset = get_preset(preset or chosen_task.default_preset)
        plan = RequestPlan(preset=chosen_preset, max_tokens=max_tokens, temperature=temperature, seed=seed,
                           deadline_s=DEFAULT_DEADLINE_S)

        previous = None
        if out is not None:
            if resume and out.exists():
                previous = read_results(out)
            else:
                _refuse_existing(out, resume)
        skip = previous.done_keys() if previous else set()
        items = plan_work(problems, samples=samples, thinking_budgets=budgets, task=chosen_task.name, skip=skip)
        wanted = {(chosen_task.name, p.id, b, s) for p in problems for b in budgets for s in range(samples)}
        kept = [s for s in (previous.samples if previous else [])
                if (s.get("task"), str(s.get("id")), s.get("thinking_budget"), int(s.get("sample", 0))) in wanted]

        settings = settings_from_flags(slots=slots, ctx=ctx, threads=threads, gpu_layers=gpu_layers,
                                       kv_type=kv_type)
        if chosen_task.kind == "code":
            isolation = probe_isolation()
            missing = [k for k, v in isolation.items() if not v]
            if missing:
                notify("the code sandbox runs without: " + ", ".join(missing)
                       + " (this kernel does not give them; see docs/EVAL.md)")
        engine = open_engine(settings, model=model, notify=notify)
        try:
            if previous is not None and previous.runs:
                _check_resumable(previous.runs[-1], chosen_task.name, engine.info.name, plan)
            if budgets != [None] and not engine.info.thinks:
                notify(f"{engine.info.name} does not think (no <think> tokens): the thinking budget changes nothing")
            writer = (ResultsWriter(out, truncate_to=previous.good_bytes if previous else None)
                      if out is not None else None)
            run = EvalRun(task=chosen_task, plan=plan, items=items, writer=writer, sandbox=limits)
            display = _ProgressDisplay()
            interrupted = False
            started = time.monotonic()
            try:
                progress = run_eval(engine, run, on_progress=display.update,
                                    header_extra={"limit": limit, "shuffle": shuffle, "samples": samples,
                                                  "thinking_budgets": budgets, "task_source": chosen_task.source},
                                    already_done=len(kept), already_correct=sum(1 for s in kept if s.get("correct")))
                interrupted = progress.interrupted
            except KeyboardInterrupt:
                interrupted = True
            finally:
                display.close()
        finally:
            engine.close()
        if out is not None:
            results = read_results(out)
            summary = summarize([s for s in results.samples if (s.get("task"), str(s.get("id")),
                                 s.get("thinking_budget"), int(s.get("sample", 0))) in wanted],
                                results.runs, results.ends)
        else:  # nothing on disk: the report of this run's samples, held in memory
            end = {"run_id": run.run_id, "wall_s": time.monotonic() - started, "interrupted": interrupted}
            summary = summarize(run.records, [run.header], [end])
        _print_report(summary, as_json)
        if interrupted:
            err_console.print("[yellow]interrupted[/]: what was done is kept"
                              + (f" in {out}; add --resume to continue" if out else ""))
            raise typer.Exit(130)


def _refuse_existing(out: Path, resume: bool) -> None:
    if out.exists() and out.stat().st_size > 0 and not resume:
        raise EvalError(f"{out} already exists",
                        hint="add --resume to continue that run, or choose another --out")


def _check_resumable(header: dict, task: str, model: str, plan: RequestPlan) -> None:
    now = {"task": task, "model": model, "preset": plan.preset.name,
           "temperature": plan.temperature if plan.temperature is not None else plan.preset.sampling.temperature,
           "seed": plan.seed, "max_tokens": plan.max_tokens or plan.preset.max_tokens}
    for key in RESUME_MUST_MATCH:
        if key in header and header[key] != now[key]:
            raise EvalError(f"the results file was written with {key} {header[key]!r}, this run has {now[key]!r}",
                            hint="resume with the same options, or write to another --out")


def _compare(a: Path, b: Path, as_json: bool) -> None:
    ra, rb = read_results(a), read_results(b)
    rows = compare(ra.samples, rb.samples)
    name = lambda r, p: (r.runs[-1].get("model") if r.runs else None) or str(p)  # noqa: E731
    if as_json:
        print(json.dumps({"a": str(a), "b": str(b), "comparisons": rows}, indent=2))
    else:
        print(format_comparison(rows, f"{name(ra, a)} ({a})", f"{name(rb, b)} ({b})"))


def _print_report(summary: dict, as_json: bool) -> None:
    print(json.dumps(summary, indent=2, ensure_ascii=False) if as_json else format_report(summary))


class _ProgressDisplay:
    """done/total, running accuracy and tokens/s: a live bar on a terminal, lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar = None
        self._task = None
        self._last_done = -1

    def _line(self, p: EvalProgress) -> str:
        acc = "-" if p.accuracy is None else f"{100 * p.accuracy:.1f}%"
        # The runner keeps a couple of requests queued behind the busy slots (so a freed slot is
        # refilled at once): show them apart from those generating.
        generating = min(p.running, p.slots) if p.slots else p.running
        queued = f" + {p.running - generating} queued" if p.running > generating else ""
        return (f"{p.done}/{p.total} done · accuracy {acc} · {generating} generating{queued} · "
                f"{p.tokens_per_s:.1f} tok/s · {p.elapsed_s:.0f} s")

    def update(self, p: EvalProgress) -> None:
        if not self.tty:
            if p.done != self._last_done:
                self._last_done = p.done
                err_console.print(self._line(p))
            return
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                 console=err_console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task("eval", total=p.total, status="")
        acc = "-" if p.accuracy is None else f"{100 * p.accuracy:.1f}%"
        self._bar.update(self._task, completed=p.done,
                         status=f"acc {acc} · {p.running} running · {p.tokens_per_s:.1f} tok/s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
