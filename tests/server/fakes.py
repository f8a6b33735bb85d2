"""A scripted stand-in for the Engine: the same public API (submit -> RequestHandle, status,
info, config, close), with an event stream the test writes. Used where the demo model cannot
show a behaviour: think tags, notices, engine errors, timeouts, long silent prefills."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

from vibe_edge.text.boxed import extract_boxed
from vibe_edge.engine import (
    EngineStatus,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    Notice,
    ReasoningEnd,
    RequestHandle,
    RequestStats,
    Started,
    TextDelta,
)


@dataclass
class Script:
    """What one request produces. steps: ("reasoning"|"answer", text), ("notice", code, msg),
    ("sleep", seconds). Then it finishes with `finish` (unless cancelled first)."""

    steps: list[tuple] = field(default_factory=list)
    finish: FinishReason = FinishReason.STOP
    reasoning_end: ReasoningEnd | None = None
    error: str | None = None
    prompt_tokens: int = 12
    cached_tokens: int = 4
    start_delay_s: float = 0.0


THINKING = Script(steps=[
    ("reasoning", "Let me add. "), ("reasoning", "2 + 2 = 4."),
    ("notice", "thinking_budget", "the thinking budget ran out"),
    ("answer", "The answer is "), ("answer", "\\boxed{4}"),
], reasoning_end=ReasoningEnd.BUDGET)


class ScriptedEngine:
    def __init__(self, script: Script | None = None, *, ctx_per_slot: int = 4096, n_slots: int = 2):
        self.script = script or THINKING
        self.config = SimpleNamespace(ctx_per_slot=ctx_per_slot, n_slots=n_slots)
        self.info = ModelInfo(name="scripted-thinker", path="/dev/null", architecture="qwen2",
                              n_params=1_500_000_000, size_bytes=1, n_ctx_train=131072,
                              chat_template=None, n_slots=n_slots, ctx_per_slot=ctx_per_slot,
                              thinks=True, gpu_layers=0, gpu_offload=False)
        self.requests: list[GenerationRequest] = []
        self.handles: list[RequestHandle] = []
        self.closed = False

    def submit(self, request: GenerationRequest) -> RequestHandle:
        request.validate()
        self.requests.append(request)
        handle = RequestHandle(request.request_id)
        self.handles.append(handle)
        threading.Thread(target=self._play, args=(request, handle, self.script), daemon=True).start()
        return handle

    def _play(self, request: GenerationRequest, handle: RequestHandle, script: Script) -> None:
        t0 = time.monotonic()
        reasoning: list[str] = []
        answer: list[str] = []
        reason, error = script.finish, script.error
        if not _sleep(script.start_delay_s, handle):
            reason, error = FinishReason.CANCELLED, None
        else:
            handle.emit(Started(request.request_id, 0, script.prompt_tokens, script.cached_tokens))
            for step in script.steps:
                if handle.cancel_requested:
                    reason, error = FinishReason.CANCELLED, None
                    break
                kind = step[0]
                if kind == "sleep":
                    if not _sleep(step[1], handle):
                        reason, error = FinishReason.CANCELLED, None
                        break
                elif kind == "notice":
                    handle.emit(Notice(request.request_id, step[1], step[2]))
                else:
                    (reasoning if kind == "reasoning" else answer).append(step[1])
                    handle.emit(TextDelta(request.request_id, kind, step[1]))
        total = 1000 * (time.monotonic() - t0)
        stats = RequestStats(queue_ms=1.0, ttft_ms=2.0 if (reasoning or answer) else None,
                             total_ms=total, prompt_tokens=script.prompt_tokens,
                             cached_tokens=script.cached_tokens, reasoning_tokens=len(reasoning),
                             answer_tokens=len(answer), prefill_tps=100.0, decode_tps=10.0)
        text = "".join(answer)
        result = GenerationResult(request.request_id, "".join(reasoning) + text, "".join(reasoning),
                                  text, reason, stats, script.reasoning_end if reasoning else None,
                                  extract_boxed(text), error)
        handle.emit(Finished(request.request_id, result))

    def status(self) -> EngineStatus:
        busy = sum(1 for h in self.handles if not h.done)
        return EngineStatus(n_slots=self.config.n_slots, busy_slots=busy, queued=0, queue_size=8,
                            kv_used_tokens=0, kv_capacity_tokens=self.config.n_slots * self.config.ctx_per_slot)

    def close(self, grace_s: float = 0.0) -> None:
        """Like Engine.close: let running requests finish for grace_s, then cancel them."""
        end = time.monotonic() + grace_s
        while time.monotonic() < end and not all(h.done for h in self.handles):
            time.sleep(0.01)
        for handle in self.handles:
            handle.cancel()
        self.closed = True


def _sleep(seconds: float, handle: RequestHandle) -> bool:
    """Sleep, waking early on cancel; False when cancelled."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if handle.cancel_requested:
            return False
        time.sleep(min(0.01, max(0.0, end - time.monotonic())))
    return not handle.cancel_requested
