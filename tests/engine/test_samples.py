"""n samples from one prefill and the vote: the scheduler's side on the fake decode backend
(test_scheduler_policy.py's), and the vote's rules on canned answers. The real engine's side
(KV copy == fresh prefill, seeds, cancel) is in test_samples_engine.py."""

from __future__ import annotations

import time

from vibe_edge.engine.handle import RequestHandle
from vibe_edge.engine.job import Job
from vibe_edge.engine.samples import SampleGroup, Tally, sample_answer
from vibe_edge.types import (
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    RequestStats,
    SampleFinished,
    Started,
    TextDelta,
)

from tests.engine.test_scheduler_policy import EOG, FakeSampler, rig


def group_jobs(r, prompt, outputs, *, vote=False, max_new=32, deadline_s=60.0):
    request = GenerationRequest(prompt="fake", n=len(outputs), vote=vote)
    handle = RequestHandle(request.request_id)
    group = SampleGroup(handle, len(outputs), vote=vote)
    jobs = []
    for i, output in enumerate(outputs):
        sampler = FakeSampler(output)
        r.samplers.append(sampler)
        jobs.append(Job(request=request, handle=group.handles[i], prompt_tokens=list(prompt),
                        sampler=sampler, max_new_tokens=max_new, deadline=time.monotonic() + deadline_s,
                        group=group, sample_index=i))
    group.jobs = jobs
    return handle, group, jobs


def drain(handle):
    out = []
    while not handle._events.empty():
        out.append(handle._events.get_nowait())
    return out


def test_the_prompt_is_prefilled_once_and_copied_into_the_other_slots():
    r = rig(n_seq=3, batch_size=32)
    handle, group, jobs = group_jobs(r, [10, 11, 12, 13], [[20, EOG], [21, 22, EOG], [23, EOG]])
    r.scheduler.submit(jobs[0])
    r.scheduler.step()
    first = r.backend.batches[0]
    assert [e.token for e in first] == [10, 11, 12, 13] and {e.seq for e in first} == {0}
    # Every follower drew its first token from the leader's logits, and holds the prompt's KV.
    assert [s.drawn[:1] for s in r.samplers] == [[20], [21], [23]]
    assert r.backend.kv[1] == r.backend.kv[2] == [10, 11, 12, 13]
    r.run()
    assert all(not e.token in (10, 11, 12, 13) for b in r.backend.batches[1:] for e in b)
    events = drain(handle)
    assert [e.sample for e in events if isinstance(e, Started)] == [0, 1, 2]
    finals = [e for e in events if isinstance(e, Finished)]
    assert len(finals) == 1 and events[-1] is finals[0]
    samples = finals[0].result.samples
    assert [s.sample for s in samples] == [0, 1, 2]
    assert [s.stats.prompt_tokens - s.stats.cached_tokens for s in samples] == [4, 0, 0]
    assert [s.text for s in samples] == ["t20 ", "t21 t22 ", "t23 "]
    deltas = [(e.sample, e.text) for e in events if isinstance(e, TextDelta)]
    assert (1, "t22 ") in deltas
    assert sum(isinstance(e, SampleFinished) for e in events) == 3
    assert all(s.job is None for s in r.scheduler.slots)


def test_a_group_waits_for_all_its_slots_and_nobody_overtakes_it():
    r = rig(n_seq=3)
    busy = r.submit([1, 2], [5] * 10, max_new=6)
    r.scheduler.step()
    handle, group, jobs = group_jobs(r, [10, 11], [[EOG], [EOG], [EOG]])
    r.scheduler.submit(jobs[0])
    later = r.submit([30, 31], [EOG])
    r.scheduler.step()
    assert all(j.admitted_at is None for j in jobs) and later.admitted_at is None
    r.run()
    assert busy.admitted_at < jobs[0].admitted_at <= later.admitted_at
    assert drain(handle)[-1].result.samples[2].finish_reason is FinishReason.STOP


def test_cancel_cancels_every_sample_and_frees_their_slots():
    r = rig(n_seq=3)
    handle, group, jobs = group_jobs(r, [10, 11], [[5] * 50] * 3)
    r.scheduler.submit(jobs[0])
    for _ in range(3):
        r.scheduler.step()
    handle.cancel()
    r.scheduler.step()
    assert all(s.job is None for s in r.scheduler.slots) and all(kv == [] for kv in r.backend.kv)
    final = drain(handle)[-1]
    assert [s.finish_reason for s in final.result.samples] == [FinishReason.CANCELLED] * 3
    assert all(s.closed for s in r.samplers)


def test_a_group_cancelled_while_queued_finishes_every_sample_unadmitted():
    r = rig(n_seq=2)
    r.submit([1], [5] * 10, max_new=8)
    r.scheduler.step()
    handle, group, jobs = group_jobs(r, [10, 11], [[EOG], [EOG]])
    r.scheduler.submit(jobs[0])
    handle.cancel()
    r.run()
    final = drain(handle)[-1]
    assert isinstance(final, Finished)
    assert [s.finish_reason for s in final.result.samples] == [FinishReason.CANCELLED] * 2


def test_a_failed_prefill_ends_the_waiting_samples_too():
    r = rig(n_seq=2)
    handle, group, jobs = group_jobs(r, [10, 11], [[EOG], [EOG]])
    r.scheduler.submit(jobs[0])
    r.backend.fail_with = -1
    r.scheduler.step()
    assert all(s.job is None for s in r.scheduler.slots)
    final = drain(handle)[-1]
    assert [s.finish_reason for s in final.result.samples] == [FinishReason.ERROR] * 2


# -- early stop on the fake --------------------------------------------------------------------

def boxed(answer: str) -> list[int]:
    return [ord(c) + 1000 for c in answer]


def test_early_stop_cancels_exactly_the_samples_that_can_no_longer_matter():
    # Samples 0-2 answer at once, 3 and 4 would run on. "5" has 3 votes, and 2 still running
    # could at most make a 3-3 tie with... nothing else: 3 > 0 + 2, so both are cancelled.
    r = rig(n_seq=5)
    r.backend.piece = lambda t: b"" if t == EOG else (chr(t - 1000).encode() if t >= 1000 else f"t{t} ".encode())
    short = boxed("\\boxed{5}") + [EOG]
    long = [7] * 40
    handle, group, jobs = group_jobs(r, [10, 11], [short, short, short, long, long], vote=True)
    r.scheduler.submit(jobs[0])
    r.run()
    final = drain(handle)[-1].result
    assert final.vote.early_stopped == [3, 4]
    assert [s.finish_reason for s in final.samples] == [FinishReason.STOP] * 3 + [FinishReason.CANCELLED] * 2
    assert final.vote.tally() == {"5": 3} and final.vote.answers[3:] == [None, None]
    assert final.samples[3].stats.answer_tokens < 30
    assert all(s.job is None for s in r.scheduler.slots)


def test_no_early_stop_while_a_running_sample_could_still_tie():
    r = rig(n_seq=4)
    r.backend.piece = lambda t: b"" if t == EOG else (chr(t - 1000).encode() if t >= 1000 else f"t{t} ".encode())
    five, six = boxed("\\boxed{5}") + [EOG], boxed("\\boxed{6}") + [EOG]
    late = [7] * 12 + boxed("\\boxed{6}") + [EOG]
    handle, group, jobs = group_jobs(r, [10, 11], [five, five, six, late], vote=True, max_new=64)
    r.scheduler.submit(jobs[0])
    r.run()
    final = drain(handle)[-1].result
    assert final.vote.early_stopped == []  # 2 vs 1 with one running: it could tie
    assert final.vote.tally() == {"5": 2, "6": 2}
    # The tie goes to the shorter reasoning (none here), then the lowest sample index.
    assert final.vote.winner.answer == "5" and final.sample == 0


# -- the vote's rules on canned answers ----------------------------------------------------------

def test_equivalent_answers_written_differently_vote_together():
    t = Tally(4)
    for i, answer in enumerate(["\\frac{1}{2}", "0.5", "\\dfrac12", "3"]):
        t.add(i, answer)
    outcome = t.outcome()
    assert outcome.winner.samples == [0, 1, 2] and outcome.tally() == {"\\frac{1}{2}": 3, "3": 1}


def test_samples_without_an_answer_do_not_vote():
    t = Tally(4)
    t.add(0, None)
    t.add(1, "7")
    t.add(2, "  ")
    t.add(3, "8", reasoning_tokens=5)
    outcome = t.outcome()
    assert outcome.answers == [None, "7", None, "8"]
    assert outcome.to_dict()["abstained"] == [0, 2]
    assert sum(g.votes for g in outcome.groups) == 2


def test_a_tie_goes_to_the_group_with_the_shortest_mean_reasoning_then_the_lowest_index():
    t = Tally(4)
    t.add(0, "1", reasoning_tokens=900)
    t.add(1, "2", reasoning_tokens=100)
    t.add(2, "1", reasoning_tokens=100)
    t.add(3, "2", reasoning_tokens=300)
    assert t.outcome().winner.answer == "2"  # mean 200 against 500
    even = Tally(2)
    even.add(0, "9", reasoning_tokens=10)
    even.add(1, "4", reasoning_tokens=10)
    assert even.outcome().winner.answer == "9"


def test_decided_only_when_the_running_samples_cannot_even_tie():
    t = Tally(5)
    t.add(0, "a", is_math=False)
    t.add(1, "a", is_math=False)
    assert not t.decided()          # 2 against 0 + 3 running
    t.add(2, "b", is_math=False)
    assert not t.decided()          # 2 against 1 + 2
    t.add(3, "a", is_math=False)
    assert t.decided()              # 3 against 1 + 1
    none = Tally(3)
    none.add(0, None)
    assert not none.decided()


def test_plain_text_answers_are_compared_as_text_and_math_by_value():
    t = Tally(3)
    t.add(0, "Paris", is_math=False)
    t.add(1, "Paris", is_math=False)
    t.add(2, "paris.", is_math=False)
    assert t.outcome().tally() == {"Paris": 2, "paris.": 1}


def _result(answer: str, reason: FinishReason, boxed_answer: str | None = None) -> GenerationResult:
    return GenerationResult("r", answer, "", answer, reason, RequestStats(), boxed=boxed_answer)


def test_what_a_sample_answers_with():
    assert sample_answer(_result("so \\boxed{4}", FinishReason.STOP, "4")) == ("4", True)
    assert sample_answer(_result("so \\boxed{4}", FinishReason.LENGTH, "4")) == ("4", True)
    assert sample_answer(_result(" The  answer\n is Paris ", FinishReason.STOP)) == ("The answer is Paris", False)
    assert sample_answer(_result("The answer is Par", FinishReason.LENGTH)) == (None, False)
    assert sample_answer(_result("\\boxed{4}", FinishReason.CANCELLED, "4")) == (None, False)


def test_early_stop_replay_cuts_where_the_vote_is_decided():
    from vibe_edge.engine.samples import replay_early_stop

    # Finish order by length: after 100 and 120 (2 votes for 4, 2 running) a tie is still
    # possible; after 300 (3 votes, 1 running) it is not: the 400-token sample is cut at 300.
    votes = [(100, "4", True, 0), (300, "4", True, 0), (120, "4", True, 0), (400, "5", True, 0)]
    assert replay_early_stop(votes) == (300, [3])
    # Never decided before the last sample: nothing to cut.
    assert replay_early_stop([(10, "1", True, 0), (20, "2", True, 0), (30, "1", True, 0)]) == (-1, [])
    # Abstainers do not vote, and two samples of one length finish in the same step (not cut).
    votes = [(50, None, False, 0), (60, "x", False, 0), (60, "x", False, 0), (90, "y", False, 0)]
    assert replay_early_stop(votes) == (60, [3])
    # With two still running, 2 votes to 0 could still end in a tie: not decided.
    assert replay_early_stop(votes + [(95, "z", False, 0)]) == (-1, [])
    # Equivalent answers written differently count together (math-verify, as the engine does).
    assert replay_early_stop([(5, "\\frac12", True, 0), (6, "0.5", True, 0), (9, "3", True, 0)]) == (6, [2])
