"""The one test double: a scripted engine with the engine's public API (vibe_edge.types.EngineAPI:
submit -> a real RequestHandle, status, info, close), shared by the server and TUI tests.

Used where the demo model cannot show a behaviour: think tags, notices, engine errors,
timeouts, long silent prefills, a reply held open until the test says so. Each request plays a
Script in a thread, emitting the same events in the same order as the engine
(Started -> (TextDelta | Notice)* -> Finished), so the server and the chat read it exactly as
they read the real engine. Everything else runs for real (the server over sockets, the
Textual app under Pilot, SQLite).

    engine = ScriptedEngine(Script([reasoning("Let me add."), answer("\\\\boxed{4}")]))
    BackgroundServer(config, engine=engine)          # the server
    ChatApp(LocalBackend(engine=engine), ...)        # the chat
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from vibe_edge.engine.handle import RequestHandle
from vibe_edge.errors import VibeEdgeError
from vibe_edge.text.boxed import extract_boxed
from vibe_edge.types import (
    EngineStatus,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    Notice,
    ReasoningEnd,
    RequestStats,
    Started,
    TextDelta,
)


@dataclass(frozen=True)
class Step:
    """One step of a script. kind: "reasoning" / "answer" (text), "notice" (code, text),
    "pause" (seconds), "wait" (until `gate` is set), "length" (finish with length)."""

    kind: str
    text: str = ""
    code: str = ""
    seconds: float = 0.0
    gate: threading.Event | None = None


def reasoning(text: str) -> Step:
    return Step("reasoning", text)


def answer(text: str) -> Step:
    return Step("answer", text)


def notice(code: str, text: str) -> Step:
    return Step("notice", text, code=code)


def pause(seconds: float) -> Step:
    return Step("pause", seconds=seconds)


def wait(gate: threading.Event) -> Step:
    return Step("wait", gate=gate)


def length() -> Step:
    return Step("length")


@dataclass
class Script:
    """What one request produces, then how it finishes (unless cancelled first).

    reasoning_end None: derived as the engine would report it (the model closed the block when
    an answer follows reasoning; the budget or loop guard when their notice came). refuse: an
    error submit() raises at once, as the engine does for a request that cannot start.
    """

    steps: Sequence[Step] = ()
    finish: FinishReason = FinishReason.STOP
    reasoning_end: ReasoningEnd | None = None
    error: str | None = None
    prompt_tokens: int = 12
    cached_tokens: int = 4
    start_delay_s: float = 0.0
    refuse: VibeEdgeError | None = None


THINKING = Script(steps=[
    reasoning("Let me add. "), reasoning("2 + 2 = 4."),
    notice("thinking_budget", "the thinking budget ran out"),
    answer("The answer is "), answer("\\boxed{4}"),
], reasoning_end=ReasoningEnd.BUDGET)


@dataclass
class ScriptedEngine:
    """Plays `scripts` in turn, one per submit (the last one repeats).

    chunk: cut text steps into deltas of this many characters (None: one delta per step);
    delay_s: wait this long before each delta. fixed_stats: report the same figures every
    time (TTFT 120 ms, 1 s in all, 42 tokens/s), for stable snapshots.
    """

    scripts: Sequence[Script] = (THINKING,)
    chunk: int | None = None
    delay_s: float = 0.0
    model_name: str = "scripted-thinker"
    ctx_per_slot: int = 4096
    n_slots: int = 2
    fixed_stats: bool = False
    requests: list[GenerationRequest] = field(default_factory=list)
    handles: list[RequestHandle] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.scripts, Script):
            self.scripts = (self.scripts,)
        self.scripts = [s if isinstance(s, Script) else Script(steps=list(s)) for s in self.scripts]
        self.info = ModelInfo(name=self.model_name, path="/dev/null", architecture="qwen2",
                              n_params=1_500_000_000, size_bytes=1, n_ctx_train=131072,
                              chat_template=None, n_slots=self.n_slots, ctx_per_slot=self.ctx_per_slot,
                              thinks=True, gpu_layers=0, gpu_offload=False)

    def submit(self, request: GenerationRequest) -> RequestHandle:
        request.validate()
        script = self.scripts[min(len(self.requests), len(self.scripts) - 1)]
        self.requests.append(request)
        if script.refuse is not None:
            raise script.refuse
        handle = RequestHandle(request.request_id)
        self.handles.append(handle)
        threading.Thread(target=self._play, args=(request, handle, script), daemon=True).start()
        return handle

    def status(self) -> EngineStatus:
        busy = sum(1 for h in self.handles if not h.done)
        return EngineStatus(n_slots=self.n_slots, busy_slots=busy, queued=0, queue_size=8,
                            kv_used_tokens=0, kv_capacity_tokens=self.n_slots * self.ctx_per_slot)

    def close(self, grace_s: float = 0.0) -> None:
        """Like Engine.close: let running requests finish for grace_s, then cancel them."""
        end = time.monotonic() + grace_s
        while time.monotonic() < end and not all(h.done for h in self.handles):
            time.sleep(0.01)
        for handle in self.handles:
            handle.cancel()
        self.closed = True

    # -- one request ----------------------------------------------------------------------------
    def _play(self, request: GenerationRequest, handle: RequestHandle, script: Script) -> None:
        rid = request.request_id
        t0 = time.monotonic()
        parts: dict[str, list[str]] = {"reasoning": [], "answer": []}
        first: float | None = None
        end = None
        reason, error = script.finish, script.error
        cancelled = not _sleep(script.start_delay_s, handle)
        if not cancelled:
            handle.emit(Started(rid, 0, script.prompt_tokens, script.cached_tokens))
        for step in () if cancelled else script.steps:
            if handle.cancel_requested:
                break
            if step.kind in ("reasoning", "answer"):
                size = self.chunk or max(1, len(step.text))
                for i in range(0, len(step.text), size):
                    if self.delay_s and not _sleep(self.delay_s, handle) or handle.cancel_requested:
                        break
                    piece = step.text[i:i + size]
                    parts[step.kind].append(piece)
                    first = first or time.monotonic()
                    handle.emit(TextDelta(rid, step.kind, piece))  # type: ignore[arg-type]
                if step.kind == "answer" and parts["reasoning"] and end is None:
                    end = ReasoningEnd.MODEL
            elif step.kind == "notice":
                handle.emit(Notice(rid, step.code, step.text))
                end = {"thinking_budget": ReasoningEnd.BUDGET, "loop_guard": ReasoningEnd.LOOP}.get(step.code, end)
            elif step.kind == "pause":
                _sleep(step.seconds, handle)
            elif step.kind == "wait" and step.gate is not None:
                while not step.gate.wait(0.01) and not handle.cancel_requested:
                    pass
            elif step.kind == "length":
                reason = FinishReason.LENGTH
        if cancelled or handle.cancel_requested:
            reason, error = FinishReason.CANCELLED, None
        reasoning_text, answer_text = "".join(parts["reasoning"]), "".join(parts["answer"])
        n_reasoning, n_answer = len(parts["reasoning"]), len(parts["answer"])
        if self.fixed_stats:
            stats = RequestStats(ttft_ms=120.0, total_ms=1000.0, prompt_tokens=script.prompt_tokens,
                                 cached_tokens=script.cached_tokens, reasoning_tokens=n_reasoning,
                                 answer_tokens=n_answer, decode_tps=42.0)
        else:
            stats = RequestStats(queue_ms=1.0, ttft_ms=None if first is None else 1000 * (first - t0),
                                 total_ms=1000 * (time.monotonic() - t0), prompt_tokens=script.prompt_tokens,
                                 cached_tokens=script.cached_tokens, reasoning_tokens=n_reasoning,
                                 answer_tokens=n_answer, prefill_tps=100.0, decode_tps=10.0)
        text = (f"<think>\n{reasoning_text}\n</think>\n\n" if reasoning_text else "") + answer_text
        handle.emit(Finished(rid, GenerationResult(
            request_id=rid, text=text, reasoning=reasoning_text, answer=answer_text,
            finish_reason=reason, stats=stats,
            reasoning_end=(script.reasoning_end or end) if reasoning_text else None,
            boxed=extract_boxed(answer_text), error=error)))


def _sleep(seconds: float, handle: RequestHandle) -> bool:
    """Sleep, waking early on cancel; False when cancelled."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if handle.cancel_requested:
            return False
        time.sleep(min(0.01, max(0.0, end - time.monotonic())))
    return not handle.cancel_requested
