"""The scheduler thread: continuous batching over the backend's sequence slots.

Each step it (1) admits queued jobs into free slots, reusing the longest cached prefix,
(2) drops cancelled and expired jobs, (3) builds ONE batch: a token for every generating slot
first, then a chunk of pending prompt for slots still prefilling, (4) decodes it, and
(5) samples a token for every slot whose input is complete.

Prefill chunks shrink while others are generating (`prefill_chunk_busy`), so a user's
10k-token prompt costs everyone else a short pause per step, not a frozen stream.

Speculative decoding (engine/speculate.py) rides on the same step: a generating slot may feed
drafted tokens after its real one, as many as pay at the step costs measured around every
`llama_decode` (engine/step_cost.py) with the rest of the batch in it, up to
`SpecConfig.batch_tokens` in all; `_verify` samples at each of them in order, keeping the drafts
the sampler agrees with and taking the rest back out of the KV.

The scheduler talks to llama.cpp only through a DecodeBackend (engine/backend.py), so this
policy is tested on a fake backend as well as on the real model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from vibe_edge.engine.backend import DecodeBackend
from vibe_edge.engine.job import Job
from vibe_edge.engine.speculate import expected_gain
from vibe_edge.engine.step_cost import CALIBRATION_SIZES, StepCosts
from vibe_edge.errors import EngineBusy, EngineClosed
from vibe_edge.types import (
    Finished,
    FinishReason,
    GenerationResult,
    ReasoningEnd,
    RequestStats,
    SpecConfig,
    Started,
)

log = logging.getLogger("vibe_edge.engine")

# Appended to a think block the engine closes itself (budget, loop guard): end the thought,
# then give the model a clean line to start its answer on.
THINK_CLOSE_TEXT = "\n</think>\n\n"
IDLE_WAIT_S = 0.5


@dataclass
class Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens in this sequence's KV, pos 0..n-1
    pending: list[int] = field(default_factory=list)  # tokens to feed next
    job: Job | None = None
    last_used: float = 0.0

    @property
    def prefilling(self) -> bool:
        return self.job is not None and self.job.prefill_done_at is None


@dataclass
class Feed:
    """What one slot put into this step's batch: `tokens` from its pending input, and `drafts`
    (speculative guesses, at the positions right after them); `logits_index` is where the next
    token is sampled (the last pending token's logits), and draft i's logits sit at batch
    index draft_index + i."""

    slot: Slot
    tokens: list[int]
    logits_index: int | None
    drafts: list[int] = field(default_factory=list)
    draft_index: int = -1



class Scheduler:
    """close_tokens: THINK_CLOSE_TEXT tokenized, fed when the engine closes a think block.
    spec: how slots whose jobs speculate draft (jobs carry their own SlotSpeculation)."""

    def __init__(self, backend: DecodeBackend, *, batch_size: int, prefill_chunk_busy: int,
                 queue_size: int, close_tokens: list[int], spec: SpecConfig | None = None):
        self.backend = backend
        self.spec = spec or SpecConfig()
        self.ctx_per_slot = backend.ctx_per_seq
        self.batch_size = batch_size
        self.prefill_chunk_busy = prefill_chunk_busy
        self.queue_size = queue_size
        self.slots = [Slot(seq) for seq in range(backend.n_seq)]
        self.batch = backend.new_batch(batch_size)
        self.close_tokens = list(close_tokens)
        # Decode time by batch size, measured once: what a draft's extra tokens cost here.
        self.step_costs = StepCosts.of(self.spec.step_costs or ())  # given: nothing to measure

        self._queue: deque[Job] = deque()
        # Slow grammar draws (a whole vocabulary through a grammar: 20 ms to seconds) run here,
        # not on this thread, so the other slots keep decoding; the slot waits, out of the
        # batch, until its token is drawn.
        self._draws = ThreadPoolExecutor(max_workers=max(1, min(2, len(self.slots))),
                                         thread_name_prefix="vibe-edge-grammar-draw")
        self._drawn: deque[tuple[Slot, Job, Future]] = deque()
        self._cond = threading.Condition()
        self._accepting = True
        self._running = True
        self._thread = threading.Thread(target=self._run, name="vibe-edge-scheduler", daemon=True)
        self.steps = 0

    def start(self) -> None:
        self._thread.start()

    # -- called from other threads --------------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self._cond:
            if not self._accepting:
                raise EngineClosed("the engine is shutting down and takes no new requests",
                                   hint="retry against a running server")
            # Capacity is slots + queue: jobs waiting for a slot that is free right now (the
            # scheduler has not picked them up yet) do not count against the queue.
            free = sum(1 for slot in self.slots if slot.job is None)
            if len(self._queue) >= self.queue_size + free:
                raise EngineBusy(
                    f"all {len(self.slots)} slots are busy and {len(self._queue)} requests are "
                    "already waiting",
                    hint="retry in a few seconds, or start the engine with more --slots",
                )
            self._queue.append(job)
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def counts(self) -> tuple[int, int, int]:
        """(busy slots, queued jobs, KV tokens in use) - a racy snapshot, good for metrics."""
        busy = sum(1 for s in self.slots if s.job is not None)
        return busy, len(self._queue), sum(len(s.cached) for s in self.slots)

    def reset_idle_cache(self) -> None:
        # Runs on the caller's thread: only while nothing is running, so it cannot race a step.
        with self._cond:
            if not self.idle():
                return
            for slot in self.slots:
                self.backend.remove(slot.seq)
                slot.cached = []

    def stop_accepting(self) -> None:
        with self._cond:
            self._accepting = False

    def idle(self) -> bool:
        return not self._queue and all(s.job is None for s in self.slots)

    def cancel_all(self) -> None:
        with self._cond:
            for job in self._queue:
                job.handle.cancel()
            for slot in self.slots:
                if slot.job is not None:
                    slot.job.handle.cancel()
            self._cond.notify()

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()
        self._thread.join(timeout)
        self._draws.shutdown(wait=True)  # no draw may touch the model once the engine frees it

    # -- the loop -------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while self._running and self.idle():
                    self._cond.wait(IDLE_WAIT_S)
                if not self._running:
                    break
            try:
                self.step()
            except Exception as exc:  # a bug must not wedge the slots: fail what is running
                log.exception("scheduler step failed")
                for slot in self.slots:
                    if slot.job is not None:
                        self._finish(slot, FinishReason.ERROR, error=f"engine error: {exc}", clear_kv=True)
        # Shutting down: nobody may be left waiting for a Finished event.
        for slot in self.slots:
            if slot.job is not None:
                self._finish(slot, FinishReason.CANCELLED, clear_kv=True)
        with self._cond:
            queued, self._queue = list(self._queue), deque()
        for job in queued:
            _finish_unadmitted(job, FinishReason.CANCELLED)

    def step(self) -> None:
        """One scheduling step: admit, reap, build one batch, decode it, sample. The thread's
        loop calls it; the policy tests drive it directly on a fake backend."""
        self._collect_draws()
        self._admit()
        self._reap()
        if not self.step_costs.calibrated:
            self._calibrate_step_costs()
        feeds = self._build_batch()
        if not feeds:
            self._wait_for_draws()
            return
        status = self.backend.decode(self.batch)
        self.steps += 1
        if status != 0:
            self._decode_failed(status, feeds)
            return
        now = time.monotonic()
        for feed in feeds:
            slot = feed.slot
            slot.cached.extend(feed.tokens)
            del slot.pending[: len(feed.tokens)]
            slot.last_used = now
            if feed.logits_index is not None and slot.job is not None:
                if slot.job.prefill_done_at is None:
                    slot.job.prefill_done_at = now
                    self._fork_samples(slot, feed.logits_index)
                if feed.drafts:
                    self._verify(slot, feed)
                    continue
                token = slot.job.sample(self.backend, feed.logits_index)
                if token is None:
                    self._start_draw(slot, slot.job)
                else:
                    self._on_token(slot, token)

    # -- slow grammar draws -----------------------------------------------------------------------
    def _start_draw(self, slot: Slot, job: Job) -> None:
        def drawn(future: Future) -> None:
            with self._cond:
                self._drawn.append((slot, job, future))
                self._cond.notify()

        job.drawing = self._draws.submit(job.draw_slow)
        job.drawing.add_done_callback(drawn)

    def _collect_draws(self) -> None:
        with self._cond:
            drawn, self._drawn = self._drawn, deque()
        for slot, job, future in drawn:
            if slot.job is not job:
                continue  # it ended meanwhile (cancelled, timed out); its samplers close after
            try:
                token = future.result()
            except Exception as exc:  # noqa: BLE001 - fail this request, not the scheduler
                log.exception("grammar sampling failed")
                self._finish(slot, FinishReason.ERROR, error=f"grammar sampling failed: {exc}",
                             clear_kv=True)
                continue
            self._on_token(slot, token)

    def _wait_for_draws(self) -> None:
        """Nothing to decode: the running slots wait for draws. Sleep until one is drawn (or
        a cancel wakes us) instead of spinning."""
        with self._cond:
            if not self._drawn and any(
                    s.job is not None and s.job.drawing is not None and not s.job.drawing.done()
                    for s in self.slots):
                self._cond.wait(IDLE_WAIT_S)

    def _admit(self) -> None:
        while True:
            # Taking a job and giving it its slot is one step under the lock: in between, the
            # engine would look idle, and reset_idle_cache (another thread) could clear the KV
            # of a slot whose prefix this admission is about to reuse; and submit's capacity
            # check (free slots + queue) would count the job twice or not at all.
            with self._cond:
                free = [s for s in self.slots if s.job is None]
                if not free or not self._queue:
                    return
                job = self._queue[0]
                now = time.monotonic()
                gone = (FinishReason.CANCELLED if job.handle.cancel_requested
                        else FinishReason.TIMEOUT if now >= job.deadline else None)
                if gone is None and len(free) < job.slots_needed:
                    return  # a group of samples waits for all its slots; nobody overtakes it
                self._queue.popleft()
                admitted = [job]
                if gone is None:
                    slot = self._pick_slot(free, job.prompt_tokens)
                    self._assign(slot, job, now)
                    admitted += self._hold_followers(job, [s for s in free if s is not slot], now)
            if gone is not None:
                _finish_unadmitted(job, gone)
                continue
            for started in admitted:
                started.emit(Started(started.id, started.slot_seq, len(started.prompt_tokens),
                                     started.cached_tokens))
            for code, message in job.notices:
                job.notice(code, message)

    def _hold_followers(self, job: Job, free: list[Slot], now: float) -> list[Job]:
        """Give a group's other samples their slots: they feed nothing until the leader's
        prefill is done, then start from a copy of its KV (_fork_samples). Empty slots first,
        then the least recently used, so other conversations' caches survive longest."""
        followers = job.followers
        free = sorted(free, key=lambda s: (bool(s.cached), s.last_used))
        for follower, slot in zip(followers, free):
            slot.pending = []
            slot.job = follower
            follower.slot_seq = slot.seq
            follower.admitted_at = now
        return followers

    def _fork_samples(self, slot: Slot, logits_index: int) -> None:
        """The leader of a group has its whole prompt in the KV: copy it into each follower's
        slot and draw each follower's first token from the leader's own logits (the same
        distribution a fresh prefill gives), each with its own sampler."""
        leader = slot.job
        assert leader is not None
        for follower in leader.followers:
            dest = self.slots[follower.slot_seq]
            if dest.job is not follower:
                continue  # it ended already (cancelled, timed out)
            self.backend.copy(slot.seq, dest.seq)  # replaces all of dest's KV
            dest.cached = list(slot.cached)
            dest.last_used = slot.last_used
            follower.cached_tokens = len(follower.prompt_tokens)
            follower.prefill_done_at = leader.prefill_done_at
            token = follower.sample(self.backend, logits_index)
            if token is None:
                self._start_draw(dest, follower)
            else:
                self._on_token(dest, token)

    def _drop_orphans(self, job: Job, reason: FinishReason, error: str | None) -> None:
        """A group's leader ended before its prompt was in: its followers have nothing to start
        from, so they end the same way."""
        if job.prefill_done_at is not None:
            return
        for follower in job.followers:
            dest = self.slots[follower.slot_seq] if follower.slot_seq >= 0 else None
            if dest is not None and dest.job is follower:
                self._finish(dest, reason, error=error, clear_kv=True)

    def _assign(self, slot: Slot, job: Job, now: float) -> None:
        # Reuse the cached prefix, but always evaluate at least the last prompt token: its
        # logits are what we sample the first new token from.
        keep = min(common_prefix_len(slot.cached, job.prompt_tokens), len(job.prompt_tokens) - 1)
        if keep < len(slot.cached):
            self.backend.remove(slot.seq, keep, -1)
            del slot.cached[keep:]
        slot.pending = job.prompt_tokens[keep:]
        slot.job = job
        job.slot_seq = slot.seq
        job.cached_tokens = keep
        job.admitted_at = now

    @staticmethod
    def _pick_slot(free: list[Slot], prompt: list[int]) -> Slot:
        """The free slot that saves the most prompt work without throwing away another
        conversation's history.

        A slot whose whole content begins the prompt (this conversation's last turn, or an empty
        slot) loses nothing. A slot holding something else is overwritten past the shared part:
        worth it only when more is shared than lost (an edited or regenerated turn), not for
        the few template tokens every chat shares, or a new conversation would evict a live one
        while empty slots wait. With neither, the least recently used slot, so other
        conversations' caches survive longest."""
        best: Slot | None = None
        best_key: tuple[int, bool, float] | None = None
        for slot in free:
            shared = common_prefix_len(slot.cached, prompt)
            lost = len(slot.cached) - shared
            if lost and shared < lost:
                continue
            key = (shared, lost == 0, -slot.last_used)  # then: loses nothing, least recently used
            if best_key is None or key > best_key:
                best, best_key = slot, key
        if best is None:
            best = min(free, key=lambda s: s.last_used)
        return best

    def _reap(self) -> None:
        now = time.monotonic()
        # Waiting jobs too: a client that gives up while queued must not wait for a free slot.
        with self._cond:
            gone = [j for j in self._queue if j.handle.cancel_requested or now >= j.deadline]
            for job in gone:
                self._queue.remove(job)
        for job in gone:
            _finish_unadmitted(job, FinishReason.CANCELLED if job.handle.cancel_requested
                               else FinishReason.TIMEOUT)
        for slot in self.slots:
            job = slot.job
            if job is None:
                continue
            if job.handle.cancel_requested:
                self._finish(slot, FinishReason.CANCELLED, clear_kv=True)
            elif now >= job.deadline:
                self._finish(slot, FinishReason.TIMEOUT, clear_kv=True)

    def _build_batch(self) -> list[Feed]:
        """Fill the batch: every generating slot's input, then prompt chunks, then the drafts
        of speculating slots that pay in this step (SlotSpeculation.choose, priced by the
        measured step costs with everything else in the batch already)."""
        self.batch.clear()
        feeds: list[Feed] = []
        active = [s for s in self.slots if s.job is not None and s.pending]
        generating = [s for s in active if not s.prefilling]
        prefilling = sorted((s for s in active if s.prefilling), key=lambda s: s.job.admitted_at)
        budget = self.batch_size
        for slot in generating + prefilling:
            if budget <= 0:
                break
            take = min(len(slot.pending), budget)
            if slot.prefilling and generating:
                take = min(take, self.prefill_chunk_busy)
            chunk = slot.pending[:take]
            base = len(slot.cached)
            last = len(chunk) - 1
            logits_index = None
            for j, token in enumerate(chunk):
                want = j == last and take == len(slot.pending)
                index = self.batch.add(token, base + j, slot.seq, want)
                if want:
                    logits_index = index
            budget -= take
            feeds.append(Feed(slot, chunk, logits_index))
        # Drafts only in steps of generating slots alone: a step with a prompt chunk is a
        # prefill, and its new user's first token should not wait for anyone's guesses.
        if len(feeds) == len(generating):
            self._add_drafts(feeds, min(budget, self.spec.batch_tokens - self.batch.n))
        return feeds

    def _calibrate_step_costs(self) -> None:
        """Measure the step costs once, at the first step a speculating job generates: dummy
        tokens decoded after that slot's context, then taken out of its KV again (between two
        steps nothing else is in flight, so the slot's cache is as it was)."""
        slot = next((s for s in self.slots if s.job is not None and s.job.spec is not None
                     and not s.prefilling), None)
        if slot is None:
            return
        base = len(slot.cached)
        sizes = tuple(n for n in CALIBRATION_SIZES
                      if n <= self.spec.batch_tokens and base + n < self.ctx_per_slot)
        if not sizes:
            return
        filler = slot.cached[-1] if slot.cached else 0
        batch = self.backend.new_batch(max(sizes))

        def decode(n: int) -> None:
            batch.clear()
            for j in range(n):
                batch.add(filler, base + j, slot.seq, True)
            status = self.backend.decode(batch)
            self.backend.remove(slot.seq, base, -1)
            if status != 0:
                raise RuntimeError(f"llama_decode failed with status {status} while timing steps")

        try:
            self.step_costs.calibrate(decode, sizes)
        except RuntimeError:
            # Never fail a request over this: price every draft out (a step of n tokens as n
            # steps), so nobody drafts on this engine.
            log.warning("could not time decode steps; speculative drafts are off", exc_info=True)
            self.step_costs = StepCosts.of((n, float(n)) for n in (1, max(sizes)))
        finally:
            batch.close()
        log.info("decode step costs (ms by tokens): %s",
                 {n: round(1000 * (self.step_costs.cost(n) or 0), 1) for n in sizes})

    def _add_drafts(self, feeds: list[Feed], room: int) -> None:
        sampled = float(sum(1 for f in feeds if f.logits_index is not None))
        for feed in feeds:
            slot, job = feed.slot, feed.slot.job
            if room <= 0:
                break
            if job.spec is None or feed.logits_index is None or len(feed.tokens) != 1:
                continue
            base = len(slot.cached)
            # Every draft position must fit the slot, and drafting past the request's token
            # limit is work thrown away.
            limit = min(room, self.ctx_per_slot - base - 2, job.max_new_tokens - job.n_generated - 1)
            candidate = job.spec.propose(slot.cached, slot.pending, limit)
            if not candidate:
                continue
            drafts = job.spec.choose(candidate, self.batch.n, sampled, self.step_costs)
            if not drafts:
                continue
            feed.draft_index = self.batch.n
            for j, token in enumerate(drafts):
                self.batch.add(token, base + 1 + j, slot.seq, True)
            feed.drafts = drafts
            room -= len(drafts)
            sampled += expected_gain(job.spec.control.q, len(drafts))

    def _verify(self, slot: Slot, feed: Feed) -> None:
        """Sample at the real token, then at each draft in turn while the sampler keeps drawing
        exactly the drafted token: each accepted draft is already in the KV at the right
        position, and the token sampled at the last kept position is the step's bonus. The
        chain draws in order with its own state (penalties, RNG), so greedy output is the
        plain one and a sampled request keeps its distribution. Rejected drafts leave the KV."""
        job = slot.job
        assert job is not None and job.spec is not None
        drafts = feed.drafts
        written = len(slot.cached) + len(drafts)  # positions this feed left in the KV
        index = feed.logits_index
        accepted = 0
        while True:
            token = job.sample(self.backend, index)
            assert token is not None  # speculating jobs have no grammar, so draws are fast
            self._on_token(slot, token)
            # Stop at the first disagreement, or when the job ended or the thinking budget /
            # loop guard forced the think block closed (the drafts assumed neither).
            if (slot.job is not job or len(slot.pending) != 1 or accepted == len(drafts)
                    or token != drafts[accepted]):
                break
            slot.cached.append(token)
            slot.pending = []
            index = feed.draft_index + accepted  # the logits after this accepted draft
            accepted += 1
        job.spec.record(len(drafts), accepted)
        if len(slot.cached) < written:
            self.backend.remove(slot.seq, len(slot.cached), -1)

    def _decode_failed(self, status: int, feeds: list[Feed]) -> None:
        # Positions are bounded per slot, so this means llama.cpp itself failed (status 1: no
        # KV room, 2: aborted, <0: error). Fail only the requests in this batch.
        message = f"llama_decode failed with status {status}"
        log.error(message)
        for feed in feeds:
            slot = feed.slot
            if slot.job is not None:
                self._finish(slot, FinishReason.ERROR, error=message, clear_kv=True)

    # -- per token ------------------------------------------------------------------------------
    def _on_token(self, slot: Slot, token: int) -> None:
        job = slot.job
        assert job is not None
        if job.first_token_at is None:
            job.first_token_at = time.monotonic()
        if self.backend.is_eog(token):
            self._finish(slot, FinishReason.STOP)
            return
        stopped = self._take_token(job, token)
        if stopped:
            self._finish(slot, FinishReason.STOP)
            return
        room = self.ctx_per_slot - len(slot.cached)
        if job.n_generated >= job.max_new_tokens or room <= 1:
            self._finish(slot, FinishReason.LENGTH)
            return
        slot.pending = [token]
        if job.parser.in_reasoning:
            self._guard_reasoning(slot, job, token, room)

    def _take_token(self, job: Job, token: int) -> bool:
        was_reasoning = job.parser.in_reasoning
        stopped = job.take_text(job.detok.feed(self.backend.piece(token)))
        job.count_token(was_reasoning)
        if was_reasoning and not job.parser.in_reasoning and job.reasoning_end is None:
            job.reasoning_end = ReasoningEnd.MODEL
        return stopped

    def _guard_reasoning(self, slot: Slot, job: Job, token: int, room: int) -> None:
        """Thinking budget and loop guard: close the think block ourselves, then let the model
        answer. The closing tokens are fed with the sampled one and shown as reasoning."""
        budget = job.thinking_budget
        if budget is not None and job.reasoning_tokens >= budget:
            end = ReasoningEnd.BUDGET
            asked = job.request.reasoning.thinking_budget
            why = (f"Thinking budget of {budget} tokens reached" if asked == budget else
                   f"Thinking reached {budget} tokens, the most that still leaves room for an "
                   "answer in this request's token limit")
            message = f"{why}: the reasoning was closed and the model asked to answer."
        elif job.loop_guard is not None and job.loop_guard.feed(token):
            end = ReasoningEnd.LOOP
            message = "The reasoning started repeating itself: it was closed and the model asked to answer."
        else:
            return
        if room <= len(self.close_tokens) + 1:
            return  # no room left to answer anyway; the length limit will end it
        for forced in self.close_tokens:
            job.take_text(job.detok.feed(self.backend.piece(forced)))
            job.count_token(True)
        job.sampler.accept(self.close_tokens)
        slot.pending.extend(self.close_tokens)
        job.reasoning_end = end
        job.notice("thinking_budget" if end is ReasoningEnd.BUDGET else "loop_guard", message)

    def _finish(self, slot: Slot, reason: FinishReason, *, error: str | None = None,
                clear_kv: bool = False) -> None:
        job = slot.job
        assert job is not None
        slot.job = None
        slot.pending = []
        if clear_kv:
            self.backend.remove(slot.seq)
            slot.cached = []
        job.flush_text()
        job.finish(reason, error)
        self._drop_orphans(job, reason, error)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _finish_unadmitted(job: Job, reason: FinishReason) -> None:
    """A job that never got a slot still gets its one Finished event (and so do the other
    samples of a group it leads: they never got one either)."""
    for follower in job.followers:
        _finish_unadmitted(follower, reason)
    job.close_samplers()
    stats = RequestStats(queue_ms=1000 * (time.monotonic() - job.submitted_at),
                         total_ms=1000 * (time.monotonic() - job.submitted_at),
                         prompt_tokens=len(job.prompt_tokens))
    job.emit(Finished(job.id, GenerationResult(job.id, "", "", "", reason, stats)))
