"""The eval loop: every (problem, thinking budget, sample) through the engine, all slots busy.

It is a batch job. The runner keeps `n_slots + headroom` samples submitted (the headroom sits
in the engine's queue, so a slot that frees is refilled at once, without the whole set queued
against the engine's deadline). The samples of one problem and budget go as one engine request
of n samples (at most the slot count), so the problem's prompt is evaluated once; each sample
keeps its own seed (`sample_seed`), the one it would have alone. grades each result as it arrives (math on this thread, code in
a worker thread because the sandbox takes seconds), and writes each graded sample to the
results file before anything else happens. Ctrl-C (or `stop()`) cancels what is generating and
keeps what is written; `--resume` runs only what the file lacks.

Only the engine's public API is used: `submit(GenerationRequest) -> RequestStream`,
`async for event in handle`, `handle.cancel()`, `engine.info`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import platform
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vibe_edge.types import EngineAPI, FinishReason, GenerationResult, RequestStream, TextDelta
from vibe_edge.errors import EngineBusy, VibeEdgeError
from vibe_edge.eval.datasets import Problem, Task
from vibe_edge.eval.graders import grade_code, grade_math
from vibe_edge.eval.prompts import RequestPlan, request_for, sample_seed
from vibe_edge.eval.results import ResultsWriter
from vibe_edge.eval.sandbox import SandboxLimits
from vibe_edge.eval.types import Verdict

__all__ = ["DEFAULT_QUEUE_HEADROOM", "EvalProgress", "EvalRun", "WorkItem", "plan_work", "run_eval"]

DEFAULT_QUEUE_HEADROOM = 2
"""Requests kept waiting in the engine's queue beyond one per slot, so no slot idles while the
next request is rendered and tokenized."""

PROGRESS_INTERVAL_S = 0.5
GRADER_THREADS = 1  # the sandbox's process uses a core while it runs: one at a time


EvalEngine = EngineAPI
"""The engine as the runner uses it: the engine's own protocol (vibe_edge.types.EngineAPI)."""


@dataclass(frozen=True)
class WorkItem:
    problem: Problem
    thinking_budget: int | None  # the user's value; None is the preset's
    sample: int


@dataclass
class EvalProgress:
    """What a progress display shows; the runner updates it and calls back."""

    total: int
    done: int = 0
    correct: int = 0
    running: int = 0         # samples submitted and not finished (generating or in the queue)
    slots: int = 0           # the engine's slots: at most this many of them generate at once
    tokens: int = 0          # completion tokens of finished samples
    live_tokens: int = 0     # tokens streamed so far, unfinished samples included
    started: float = field(default_factory=time.monotonic)
    already_done: int = 0    # from the results file (--resume)
    interrupted: bool = False

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.done if self.done else None

    @property
    def tokens_per_s(self) -> float:
        elapsed = self.elapsed_s
        return self.live_tokens / elapsed if elapsed > 0 else 0.0


@dataclass
class EvalRun:
    """Everything fixed for one run (one invocation of `vibe-edge eval`)."""

    task: Task
    plan: RequestPlan
    items: Sequence[WorkItem]
    writer: ResultsWriter | None = None
    sandbox: SandboxLimits = SandboxLimits()
    header: dict[str, Any] = field(default_factory=dict)
    headroom: int = DEFAULT_QUEUE_HEADROOM
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    records: list[dict[str, Any]] = field(default_factory=list)


def plan_work(problems: Iterable[Problem], *, samples: int = 1,
              thinking_budgets: Sequence[int | None] = (None,), task: str = "",
              skip: set | None = None) -> list[WorkItem]:
    """Budget-major order (each budget's work finishes together, so its wall time is its own),
    then problem, then sample; minus the keys in `skip` (already in the results file)."""
    problems = list(problems)
    items = []
    for budget in thinking_budgets:
        for problem in problems:
            for sample in range(samples):
                key = (task, problem.id, budget, sample)
                if skip and key in skip:
                    continue
                items.append(WorkItem(problem, budget, sample))
    return items


def _machine() -> dict[str, Any]:
    import os

    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cores": os.cpu_count(),
            "python": platform.python_version()}


def run_header(run: EvalRun, engine: EvalEngine, extra: dict[str, Any]) -> dict[str, Any]:
    info = engine.info
    preset = run.plan.preset
    return {"type": "run", "run_id": run.run_id, "task": run.task.name, "kind": run.task.kind,
            "model": info.name, "model_path": str(info.path), "n_slots": info.n_slots,
            "ctx_per_slot": info.ctx_per_slot, "thinks": info.thinks, "preset": preset.name,
            "temperature": run.plan.temperature if run.plan.temperature is not None else preset.sampling.temperature,
            "seed": run.plan.seed, "max_tokens": run.plan.max_tokens or preset.max_tokens,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": _machine(), **extra}


def _record(run: EvalRun, item: WorkItem, messages: list, result: GenerationResult | None,
            verdict: Verdict, t_submit: float, t_end: float, error: str | None = None) -> dict[str, Any]:
    problem = item.problem
    record: dict[str, Any] = {
        "type": "sample", "run_id": run.run_id, "task": run.task.name, "id": problem.id,
        "sample": item.sample, "thinking_budget": item.thinking_budget,
        "subject": problem.subject, "level": problem.level,
        "messages": messages, "gold": problem.answer,
        "extracted": verdict.extracted, "correct": verdict.correct, "verdict": verdict.detail,
        "t_submit_s": round(t_submit, 3), "t_end_s": round(t_end, 3),
    }
    if result is not None:
        record.update({
            "output": result.text, "reasoning": result.reasoning, "answer": result.answer,
            "boxed": result.boxed, "finish_reason": result.finish_reason.value,
            "reasoning_end": result.reasoning_end.value if result.reasoning_end else None,
            "stats": result.stats.to_dict(), "error": result.error,
        })
    else:
        record.update({"output": None, "finish_reason": "error", "reasoning_end": None,
                       "stats": None, "error": error})
    if verdict.sandbox is not None:
        record["sandbox"] = verdict.sandbox
    return record


class _Runner:
    def __init__(self, engine: EvalEngine, run: EvalRun, progress: EvalProgress,
                 on_progress: Callable[[EvalProgress], None] | None, stop: threading.Event):
        self.engine, self.run, self.progress = engine, run, progress
        self.on_progress, self.stop = on_progress, stop
        progress.slots = engine.info.n_slots
        self.pending = deque(run.items)
        self.generating: dict[asyncio.Task, tuple[list[WorkItem], list, float, RequestStream]] = {}
        self.grading: dict[asyncio.Future, tuple[WorkItem, list, GenerationResult, float]] = {}
        self.pool = concurrent.futures.ThreadPoolExecutor(GRADER_THREADS, thread_name_prefix="eval-grader")
        self.t0 = time.monotonic()
        self._last_report = 0.0

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is not None and (force or now - self._last_report >= PROGRESS_INTERVAL_S):
            self._last_report = now
            self.progress.running = self._samples_running()
            self.on_progress(self.progress)

    async def _consume(self, handle: RequestStream) -> GenerationResult:
        async for event in handle:
            if isinstance(event, TextDelta):
                self.progress.live_tokens += 1
                self._report()
        return handle.result()

    def _finish(self, item: WorkItem, messages: list, result: GenerationResult | None,
                verdict: Verdict, t_submit: float, error: str | None = None) -> None:
        record = _record(self.run, item, messages, result, verdict, t_submit,
                         time.monotonic() - self.t0, error)
        if self.run.writer is not None:
            self.run.writer.write(record)
        self.run.records.append(record)
        self.progress.done += 1
        self.progress.correct += int(verdict.correct)
        if result is not None:
            self.progress.tokens += result.stats.completion_tokens
        self._report(force=True)

    def _samples_running(self) -> int:
        return sum(len(items) for items, _, _, _ in self.generating.values())

    def _take_group(self) -> list[WorkItem]:
        """The next pending items of one problem and budget (plan_work puts them together), at
        most one per slot: they become one request of n samples."""
        first = self.pending.popleft()
        group = [first]
        while (self.pending and len(group) < self.engine.info.n_slots
               and self.pending[0].problem.id == first.problem.id
               and self.pending[0].thinking_budget == first.thinking_budget):
            group.append(self.pending.popleft())
        return group

    def _fill(self) -> None:
        limit = self.engine.info.n_slots + self.run.headroom
        while self.pending and self._samples_running() < limit and not self.stop.is_set():
            items = self._take_group()
            item = items[0]
            request, messages = request_for(self.run.plan, self.run.task, item.problem,
                                            sample=item.sample, thinking_budget=item.thinking_budget,
                                            ctx_per_slot=self.engine.info.ctx_per_slot)
            if len(items) > 1:
                request.n = len(items)
                request.seeds = [sample_seed(self.run.plan.seed, i.problem.id, i.sample) for i in items]
            t_submit = time.monotonic() - self.t0
            try:
                handle = self.engine.submit(request)
            except EngineBusy:
                self.pending.extendleft(reversed(items))  # the queue is fuller than we thought: later
                return
            except VibeEdgeError as exc:  # this problem cannot run (e.g. its prompt is too long)
                for one in items:
                    self._finish(one, messages, None, Verdict(False, None, f"not run: {exc.message}"),
                                 t_submit, error=exc.message)
                continue
            task = asyncio.ensure_future(self._consume(handle))
            self.generating[task] = (items, messages, t_submit, handle)

    def _grade_now_or_later(self, item: WorkItem, messages: list, result: GenerationResult,
                            t_submit: float) -> None:
        if result.finish_reason in (FinishReason.ERROR, FinishReason.CANCELLED) and not result.answer:
            self._finish(item, messages, result, Verdict(False, None, f"generation {result.finish_reason.value}"
                                                                      + (f": {result.error}" if result.error else "")),
                         t_submit)
            return
        if self.run.task.kind == "code":
            future = asyncio.get_running_loop().run_in_executor(
                self.pool, grade_code, item.problem, result.answer, self.run.sandbox)
            self.grading[future] = (item, messages, result, t_submit)
            return
        # On the loop's thread: math-verify's time limit (an alarm) works on the main thread.
        # The answer part is what the engine extracted `boxed` from: the same last \boxed{}.
        self._finish(item, messages, result, grade_math(self.run.task, item.problem, result.answer), t_submit)

    async def main(self) -> None:
        try:
            self._fill()
            while self.generating or self.grading or (self.pending and not self.stop.is_set()):
                if self.stop.is_set():
                    break
                waiting = set(self.generating) | set(self.grading)
                if not waiting:  # everything was refused as busy: give the engine a moment
                    await asyncio.sleep(0.1)
                    self._fill()
                    continue
                done, _ = await asyncio.wait(waiting, timeout=PROGRESS_INTERVAL_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                finished = []
                for fut in done:
                    if fut in self.generating:
                        items, messages, t_submit, _ = self.generating.pop(fut)
                        result = fut.result()
                        for item, one in zip(items, result.samples or [result]):
                            finished.append((item, messages, one, t_submit))
                    else:
                        item, messages, result, t_submit = self.grading.pop(fut)
                        self._finish(item, messages, result, fut.result(), t_submit)
                self._fill()  # refill the slots before grading: grading must not idle them
                for item, messages, result, t_submit in finished:
                    self._grade_now_or_later(item, messages, result, t_submit)
                self._report()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        interrupted = bool(self.generating or self.pending)
        for task, (_, _, _, handle) in list(self.generating.items()):
            handle.cancel()  # unfinished work is not recorded: --resume runs it again
        for task in list(self.generating):
            task.cancel()
        if self.grading:  # generated and being graded: worth finishing, it is seconds
            done, _ = await asyncio.wait(set(self.grading), timeout=self.run.sandbox.wall_s + 10)
            for fut in done:
                item, messages, result, t_submit = self.grading.pop(fut)
                if not fut.cancelled() and fut.exception() is None:
                    self._finish(item, messages, result, fut.result(), t_submit)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.progress.interrupted = interrupted
        self.progress.running = 0
        if self.run.writer is not None:
            self.run.writer.write({"type": "run_end", "run_id": self.run.run_id,
                                   "wall_s": round(time.monotonic() - self.t0, 3),
                                   "interrupted": interrupted,
                                   "done": self.progress.done - self.progress.already_done})
        self._report(force=True)


def run_eval(engine: EvalEngine, run: EvalRun, *, on_progress: Callable[[EvalProgress], None] | None = None,
             stop: threading.Event | None = None, header_extra: dict[str, Any] | None = None,
             already_done: int = 0, already_correct: int = 0) -> EvalProgress:
    """Run every work item; returns the final progress (interrupted=True when stopped early).

    KeyboardInterrupt (Ctrl-C) propagates after the in-flight requests are cancelled and the
    results file is closed with what was done.
    """
    stop = stop or threading.Event()
    progress = EvalProgress(total=len(run.items) + already_done, done=already_done,
                            correct=already_correct, already_done=already_done)
    header = run_header(run, engine, header_extra or {})
    run.header = header
    if run.writer is not None:
        run.writer.write(header)
    runner = _Runner(engine, run, progress, on_progress, stop)
    try:
        asyncio.run(runner.main())
    finally:
        if run.writer is not None:
            run.writer.close()
    return progress


