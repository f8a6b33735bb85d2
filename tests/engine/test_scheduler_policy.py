"""The scheduler's policy on a fake decode backend: chunked-prefill fairness, prefix routing,
least-recently-used slot choice, admission and the queue, cancellation, decode failures and the
end-of-generation rules. The real-model tests (test_engine.py) show the same engine produces
llama.cpp's tokens; these show, step by step, which tokens the scheduler feeds and why.

The fake holds each sequence's KV as a token list and refuses what llama.cpp would (positions
that are not contiguous, a full sequence); its samplers replay scripted tokens. Tests drive
Scheduler.step() directly, so every step is deterministic.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from vibe_edge.engine.handle import RequestHandle
from vibe_edge.engine.job import Job
from vibe_edge.engine.scheduler import Scheduler
from vibe_edge.engine.speculate import SlotSpeculation
from vibe_edge.engine.step_cost import CALIBRATION_SIZES, StepCosts
from vibe_edge.errors import EngineBusy, EngineClosed
from vibe_edge.types import (
    Finished,
    FinishReason,
    GenerationRequest,
    Notice,
    ReasoningEnd,
    ReasoningOptions,
    SpecConfig,
    Started,
)

EOG = 0
THINK, END_THINK = 1, 2
CLOSE_TOKENS = [END_THINK, 3]  # "</think>", "\n\n"
PIECES = {EOG: b"", THINK: b"<think>", END_THINK: b"</think>", 3: b"\n\n"}


@dataclass
class Entry:
    token: int
    pos: int
    seq: int
    logits: bool


class FakeBatch:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: list[Entry] = []

    @property
    def n(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries = []

    def add(self, token: int, pos: int, seq: int, want_logits: bool) -> int:
        assert len(self.entries) < self.capacity, "batch overflow"
        self.entries.append(Entry(token, pos, seq, want_logits))
        return len(self.entries) - 1

    def close(self) -> None:
        pass


class FakeSampler:
    """Replays `tokens`, then repeats the last one. Records what the scheduler fed it.

    slow: every draw is a slow one (a grammar refused the token the chain drew): the backend's
    sample() leaves it undone and sample_slow() finishes it, after `gate` is set."""

    def __init__(self, tokens: list[int], *, slow: bool = False, gate: threading.Event | None = None):
        self.tokens = list(tokens)
        self.slow = slow
        self.gate = gate
        self.drawn: list[int] = []
        self.accepted: list[int] = []
        self.closed = False
        self.slow_threads: list[str] = []

    def sample_slow(self) -> int:
        self.slow_threads.append(threading.current_thread().name)
        if self.gate is not None:
            assert self.gate.wait(10)
        return self.draw()

    def draw(self) -> int:
        token = self.tokens[len(self.drawn)] if len(self.drawn) < len(self.tokens) else self.tokens[-1]
        self.drawn.append(token)
        return token

    def accept(self, tokens) -> None:
        self.accepted.extend(tokens)

    def close(self) -> None:
        self.closed = True


class FakeBackend:
    """A DecodeBackend with token lists for KV: it checks what llama.cpp would refuse."""

    def __init__(self, n_seq: int = 2, ctx_per_seq: int = 64):
        self.n_seq, self.ctx_per_seq = n_seq, ctx_per_seq
        self.kv: list[list[int]] = [[] for _ in range(n_seq)]
        self.batches: list[list[Entry]] = []  # every batch decoded, in order
        self.fail_with: int | None = None     # the next decode's status
        self._last: list[Entry] = []

    def new_batch(self, capacity: int) -> FakeBatch:
        return FakeBatch(capacity)

    def decode(self, batch: FakeBatch) -> int:
        if self.fail_with is not None:
            status, self.fail_with = self.fail_with, None
            return status
        entries = list(batch.entries)
        for e in entries:
            assert e.pos == len(self.kv[e.seq]), f"seq {e.seq}: position {e.pos} after {len(self.kv[e.seq])}"
            assert e.pos < self.ctx_per_seq, "past the sequence's cells"
            self.kv[e.seq].append(e.token)
        self.batches.append(entries)
        self._last = entries
        return 0

    def sample(self, sampler: FakeSampler, index: int) -> int | None:
        assert self._last[index].logits, "sampled at a position without logits"
        return None if sampler.slow else sampler.draw()

    def remove(self, seq: int, start: int = -1, end: int = -1) -> None:
        assert end == -1
        del self.kv[seq][max(start, 0):]

    def copy(self, src: int, dst: int, start: int = -1, end: int = -1) -> None:
        self.kv[dst] = list(self.kv[src])

    def piece(self, token: int) -> bytes:
        return PIECES.get(token, f"t{token} ".encode())

    def is_eog(self, token: int) -> bool:
        return token == EOG


@dataclass
class Rig:
    backend: FakeBackend
    scheduler: Scheduler
    samplers: list[FakeSampler] = field(default_factory=list)

    def job(self, prompt: list[int], output: list[int], *, max_new: int = 32, deadline_s: float = 60.0,
            budget: int | None = None, start_in_reasoning: bool = False, slow: bool = False,
            gate: threading.Event | None = None) -> Job:
        request = GenerationRequest(prompt="fake", reasoning=ReasoningOptions(thinking_budget=budget))
        sampler = FakeSampler(output, slow=slow, gate=gate)
        self.samplers.append(sampler)
        return Job(request=request, handle=RequestHandle(request.request_id), prompt_tokens=list(prompt),
                   sampler=sampler, max_new_tokens=max_new, deadline=time.monotonic() + deadline_s,
                   start_in_reasoning=start_in_reasoning)

    def submit(self, *args, **kwargs) -> Job:
        job = self.job(*args, **kwargs)
        self.scheduler.submit(job)
        return job

    def run(self, max_steps: int = 200) -> None:
        for _ in range(max_steps):
            if self.scheduler.idle():
                return
            self.scheduler.step()
        raise AssertionError("the scheduler did not go idle")

    def fed(self, step: int, seq: int) -> list[int]:
        return [e.token for e in self.backend.batches[step] if e.seq == seq]


def rig(n_seq: int = 2, ctx_per_seq: int = 64, *, batch_size: int = 32, chunk: int = 4,
        queue_size: int = 8) -> Rig:
    backend = FakeBackend(n_seq, ctx_per_seq)
    scheduler = Scheduler(backend, batch_size=batch_size, prefill_chunk_busy=chunk,
                          queue_size=queue_size, close_tokens=CLOSE_TOKENS)
    return Rig(backend, scheduler)


_seen: dict[str, list] = {}


def events(job: Job) -> list:
    """Every event the job's handle received so far (iterating a handle consumes it)."""
    out = _seen.setdefault(job.id, [])
    while not job.handle._events.empty():
        out.append(job.handle._events.get_nowait())
    return list(out)


def finished(job: Job) -> Finished:
    [last] = [e for e in events(job) if isinstance(e, Finished)]
    return last


# -- chunked prefill ---------------------------------------------------------------------------

def test_a_long_prefill_moves_in_small_chunks_while_another_slot_generates():
    r = rig(batch_size=32, chunk=4)
    talker = r.submit([10, 11], [20] * 40, max_new=12)
    r.scheduler.step()  # talker's prompt, first token
    reader = r.submit(list(range(100, 130)), [21], max_new=1)
    for step in range(1, 8):
        r.scheduler.step()
        assert r.fed(step, 0) == [20], "the generating slot gets its token every step"
        assert len(r.fed(step, 1)) == 4, "the prompt goes in chunks of prefill_chunk_busy"
    r.run()
    assert finished(talker).result.finish_reason is FinishReason.LENGTH
    assert finished(reader).result.stats.prompt_tokens == 30


def test_a_prefill_alone_uses_the_whole_batch():
    r = rig(batch_size=16, chunk=4)
    job = r.submit(list(range(100, 140)), [7, EOG])
    r.run()
    assert [len(b) for b in r.backend.batches] == [16, 16, 8, 1]
    assert finished(job).result.finish_reason is FinishReason.STOP


def test_prefilling_slots_are_served_in_admission_order():
    r = rig(batch_size=12, chunk=4)
    first = r.submit(list(range(100, 120)), [EOG])
    second = r.submit(list(range(200, 220)), [EOG])
    r.scheduler.step()
    assert r.fed(0, 0) == list(range(100, 112)) and r.fed(0, 1) == []  # all budget to the first
    r.scheduler.step()
    assert r.fed(1, 0) == list(range(112, 120)) and r.fed(1, 1) == list(range(200, 204))
    r.run()
    assert finished(first).result.finish_reason is finished(second).result.finish_reason is FinishReason.STOP


# -- slot choice and the prefix cache ----------------------------------------------------------

def test_a_request_goes_to_the_free_slot_holding_its_longest_prefix():
    r = rig(n_seq=3)
    for prompt in ([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]):
        r.submit(prompt, [EOG])
        r.run()
    job = r.submit([5, 6, 7, 8, 13, 14], [EOG])
    r.scheduler.step()
    started = [e for e in events(job) if isinstance(e, Started)][0]
    assert started.slot == 1 and started.cached_tokens == 4
    assert r.fed(-1, 1) == [13, 14], "only the new tokens are evaluated"


def test_a_repeated_prompt_still_evaluates_its_last_token():
    r = rig()
    r.submit([1, 2, 3], [EOG])
    r.run()
    job = r.submit([1, 2, 3], [EOG])
    r.scheduler.step()
    started = [e for e in events(job) if isinstance(e, Started)][0]
    assert started.cached_tokens == 2 and r.fed(-1, started.slot) == [3]


def test_a_diverging_prompt_trims_the_cached_tail_from_the_kv():
    r = rig(n_seq=1)
    r.submit([1, 2, 3, 4, 5], [8, EOG])
    r.run()
    assert r.backend.kv[0] == [1, 2, 3, 4, 5, 8]
    r.submit([1, 2, 9], [EOG])
    r.scheduler.step()
    assert r.backend.kv[0] == [1, 2, 9], "positions past the shared prefix were removed first"


def test_with_no_shared_prefix_the_least_recently_used_slot_is_taken():
    r = rig(n_seq=3)
    for prompt in ([1, 1], [2, 2], [3, 3]):
        r.submit(prompt, [EOG])
        r.run()
    r.submit([2, 2, 5], [EOG])  # refreshes slot 1
    r.run()
    job = r.submit([7, 7], [EOG])
    r.scheduler.step()
    started = [e for e in events(job) if isinstance(e, Started)][0]
    assert started.slot == 0, "slot 0 was used longest ago; slots 1 and 2 keep their caches"
    assert r.backend.kv[1][:2] == [2, 2] and r.backend.kv[2][:2] == [3, 3]


# -- admission, the queue and cancellation -----------------------------------------------------

def test_requests_wait_in_order_for_a_free_slot():
    r = rig(n_seq=1)
    jobs = [r.submit([i + 10], [20 + i, EOG]) for i in range(3)]
    r.scheduler.step()
    assert [any(isinstance(e, Started) for e in events(j)) for j in jobs] == [True, False, False]
    r.run()
    assert [finished(j).result.answer for j in jobs] == ["t20 ", "t21 ", "t22 "]
    assert [finished(j).result.stats.queue_ms > 0 for j in jobs[1:]] == [True, True]


def test_a_full_queue_refuses_at_once_and_a_stopped_scheduler_takes_nothing():
    r = rig(n_seq=1, queue_size=2)
    for prompt in ([1], [2], [3]):  # capacity is the free slot plus the queue
        r.submit(prompt, [5] * 50, max_new=50)
    with pytest.raises(EngineBusy):
        r.submit([4], [EOG])
    r.scheduler.step()  # the first job takes the slot: the queue holds two, it is full
    with pytest.raises(EngineBusy):
        r.submit([5], [EOG])
    r.scheduler.stop_accepting()
    with pytest.raises(EngineClosed):
        r.submit([6], [EOG])


def test_cancelled_or_expired_while_queued_never_gets_a_slot():
    r = rig(n_seq=1)
    running = r.submit([1], [5] * 50, max_new=50)
    cancelled = r.submit([2], [EOG])
    expired = r.submit([3], [EOG], deadline_s=0.0)
    cancelled.handle.cancel()
    r.scheduler.step()
    assert finished(cancelled).result.finish_reason is FinishReason.CANCELLED
    assert finished(expired).result.finish_reason is FinishReason.TIMEOUT
    assert not any(isinstance(e, Started) for e in events(cancelled) + events(expired))
    assert r.samplers[1].closed and r.samplers[2].closed
    running.handle.cancel()
    r.run()


def test_cancel_frees_the_slot_and_clears_its_kv_within_one_step():
    r = rig(n_seq=1)
    job = r.submit([1, 2, 3], [5] * 50, max_new=50)
    r.scheduler.step()
    r.scheduler.step()
    job.handle.cancel()
    r.scheduler.step()
    assert finished(job).result.finish_reason is FinishReason.CANCELLED
    assert r.backend.kv[0] == [] and r.scheduler.idle()


def test_a_failed_decode_fails_only_the_requests_in_that_batch():
    r = rig(n_seq=2)
    keeper = r.submit([1, 2], [EOG])
    r.run()
    assert r.backend.kv[0] == [1, 2]
    victim = r.submit([9, 9, 9], [5])
    r.backend.fail_with = 1
    r.scheduler.step()
    result = finished(victim).result
    assert result.finish_reason is FinishReason.ERROR and "status 1" in result.error
    assert r.backend.kv[1] == [] and r.backend.kv[0] == [1, 2], "the idle slot's cache survives"
    assert finished(keeper).result.finish_reason is FinishReason.STOP


# -- how a generation ends ---------------------------------------------------------------------

def test_end_of_generation_stops_and_the_token_limit_is_length():
    r = rig()
    stop = r.submit([1], [5, 6, EOG, 7])
    length = r.submit([2], [5] * 10, max_new=3)
    r.run()
    assert (finished(stop).result.finish_reason, finished(stop).result.answer) == (FinishReason.STOP, "t5 t6 ")
    assert finished(length).result.finish_reason is FinishReason.LENGTH
    assert finished(length).result.stats.answer_tokens == 3


def test_a_full_slot_ends_with_length_before_llama_cpp_would_refuse():
    r = rig(n_seq=1, ctx_per_seq=8)
    job = r.submit([1, 2, 3], [5] * 20, max_new=20)
    r.run()
    assert finished(job).result.finish_reason is FinishReason.LENGTH
    assert len(r.backend.kv[0]) < 8


def test_the_thinking_budget_feeds_the_closing_tokens_in_the_next_step():
    r = rig(n_seq=1)
    job = r.submit([1], [THINK, 5, 6, 7, 8, 9, EOG], budget=3)
    r.run()
    result = finished(job).result
    assert result.reasoning_end is ReasoningEnd.BUDGET and result.reasoning == "t5 t6 "
    notices = [e for e in events(job) if isinstance(e, Notice)]
    assert [n.code for n in notices] == ["thinking_budget"]
    # The step after the budget ran out fed the sampled token and the closing tokens together.
    assert [1, THINK, 5, 6, END_THINK, 3] == r.backend.kv[0][:6]
    assert r.samplers[0].accepted == CLOSE_TOKENS, "the sampler was told about the forced tokens"
    assert result.answer.startswith("t7 ")


def test_a_new_conversation_takes_an_empty_slot_over_evicting_one_for_shared_template_tokens():
    r = rig(n_seq=2)
    r.submit([1, 2, 30, 31, 32, 33], [EOG])  # a conversation: template tokens 1, 2, then its history
    r.run()
    job = r.submit([1, 2, 40], [EOG])  # another one, sharing only the template's opening
    r.scheduler.step()
    started = [e for e in events(job) if isinstance(e, Started)][0]
    assert started.slot == 1 and started.cached_tokens == 0
    assert r.backend.kv[0][:6] == [1, 2, 30, 31, 32, 33], "the first conversation's history is kept"
    # An edited last turn shares more than it loses: it does reuse (and trim) its own slot.
    edit = r.submit([1, 2, 30, 31, 32, 99], [EOG])
    r.run()
    assert [e for e in events(edit) if isinstance(e, Started)][0].slot == 0


def test_a_slow_draw_runs_off_the_scheduler_thread_while_other_slots_keep_decoding():
    r = rig(n_seq=2)
    gate = threading.Event()
    fast = r.submit([1], [5] * 40, max_new=6)
    slow = r.submit([2], [7, EOG], slow=True, gate=gate)
    r.scheduler.step()  # both prompts; the slow slot's draw goes to a helper thread
    for step in range(1, 5):
        r.scheduler.step()
        assert r.fed(step, 0) == [5], "the other slot decodes every step"
        assert r.fed(step, 1) == [], "the slot waiting for its draw is out of the batch"
    gate.set()
    r.run()
    assert finished(fast).result.finish_reason is FinishReason.LENGTH
    result = finished(slow).result
    assert result.finish_reason is FinishReason.STOP and result.answer == "t7 "
    assert all(name.startswith("vibe-edge-grammar-draw") for name in r.samplers[1].slow_threads)


# -- speculative drafts, priced by step costs ---------------------------------------------------

# Memory-bound up to 4 tokens (a step of 4 costs little more than 1), compute-bound past that.
SATURATING = {1: 10.0, 2: 10.5, 4: 12.0, 8: 24.0, 16: 48.0}
PATTERN = [10, 11, 12, 13, 14, 15, 16, 17]


def _spec_rig(n_seq: int) -> Rig:
    r = rig(n_seq, ctx_per_seq=256, batch_size=64)
    r.scheduler.spec = SpecConfig(enabled=True, max_draft=15, batch_tokens=16)
    r.scheduler.step_costs = StepCosts.of(SATURATING.items())
    return r


def _copying_job(r: Rig) -> Job:
    job = r.job(PATTERN * 3, PATTERN * 3, max_new=24)  # the output repeats what the prompt holds
    job.spec = SlotSpeculation(SpecConfig(enabled=True, max_draft=15))
    r.scheduler.submit(job)
    return job


def _drafted(r: Rig, seq: int) -> int:
    """Tokens fed for `seq` beyond one per step, once it generates (its drafts)."""
    return sum(max(0, len(r.fed(step, seq)) - 1) for step in range(1, len(r.backend.batches)))


def test_a_lone_copying_slot_drafts_what_pays_and_keeps_the_kv_exact():
    r = _spec_rig(1)
    job = _copying_job(r)
    r.run()
    assert finished(job).result.finish_reason is FinishReason.LENGTH
    assert r.samplers[0].drawn[:24] == (PATTERN * 3)[:24]
    assert _drafted(r, 0) > 0 and job.spec.accepted > 0
    # At these costs a 4-token step is the best buy: 3 drafts, never more.
    assert max(len(r.fed(step, 0)) for step in range(1, len(r.backend.batches))) == 4
    assert r.backend.kv[0] == r.scheduler.slots[0].cached  # rejected drafts left the KV


def test_four_generating_slots_fill_a_step_and_nobody_drafts():
    r = _spec_rig(4)
    jobs = [_copying_job(r) for _ in range(4)]
    r.run()
    assert all(finished(j).result.finish_reason is FinishReason.LENGTH for j in jobs)
    fed = [[len(r.fed(step, seq)) for seq in range(4)] for step in range(len(r.backend.batches))]
    all_generating = [i for i, counts in enumerate(fed) if counts == [1, 1, 1, 1]]
    assert len(all_generating) > 10
    # While all four generate, every step feeds one token each: no drafts at these prices...
    first, last = all_generating[0], all_generating[-1]
    assert all(fed[i] == [1, 1, 1, 1] for i in range(first, last + 1))
    # ...and once two have finished, the others draft again (a 4-token step is cheap).
    assert any(max(counts) > 1 for counts in fed[last + 1:])


def test_step_costs_are_measured_once_after_the_first_speculating_slot_and_leave_its_kv():
    r = rig(1, ctx_per_seq=256, batch_size=64)
    r.scheduler.spec = SpecConfig(enabled=True, max_draft=15, batch_tokens=16)
    job = _copying_job(r)
    r.scheduler.step()                      # the prefill: nobody generates yet, nothing timed
    assert not r.scheduler.step_costs.calibrated
    kv_before = list(r.backend.kv[0])
    r.scheduler.step()                      # timed before this step's batch is built
    assert r.scheduler.step_costs.calibrated
    timed = [len(b) for b in r.backend.batches[1:-1]]
    assert timed == list(CALIBRATION_SIZES) * 3  # a warm-up round and two timed rounds
    assert r.backend.kv[0][:len(kv_before)] == kv_before  # the dummies left; the step went on
    assert r.backend.kv[0] == r.scheduler.slots[0].cached
    steps = len(r.backend.batches)
    r.run()
    assert len(r.backend.batches) > steps and finished(job).result.finish_reason is FinishReason.LENGTH
    assert len([b for b in r.backend.batches if len(b) == 16 and b[0].token == b[-1].token]) == 3
