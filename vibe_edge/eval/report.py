"""Reports: accuracy with intervals, time and tokens, from graded samples; and A-vs-B comparisons.

A report has one section per (task, thinking budget). With one sample per problem a section
gives accuracy (pass@1) with its Wilson interval; with K samples it gives pass@1 (the mean over
samples, normal interval over problems), maj@K (the majority answer, by math-verify
equivalence, is right; math only) and pass@K (any sample right), each with an interval. MATH-500
sections are also broken down by subject and level.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from vibe_edge.engine.samples import replay_early_stop, voting_answer
from vibe_edge.text.equivalence import AnswerGroup, answers_equivalent, vote
from vibe_edge.eval.stats import difference_interval, mean_interval, paired_comparison, wilson_interval

__all__ = ["budget_label", "compare", "format_comparison", "format_report", "summarize"]


def budget_label(budget: Any) -> str:
    if budget is None:
        return "preset"
    if budget == -1:
        return "none"
    return str(budget)


def _rate(correct: int, total: int) -> dict[str, Any]:
    low, high = wilson_interval(correct, total)
    return {"correct": correct, "n": total, "accuracy": correct / total if total else None,
            "ci95": [low, high]}


def _by_problem(samples: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in sorted(samples, key=lambda r: (str(r["id"]), int(r.get("sample", 0)))):
        grouped[str(s["id"])].append(s)
    return grouped


def _reasoning_tokens(sample: dict[str, Any]) -> int:
    return int((sample.get("stats") or {}).get("reasoning_tokens") or 0)


def _majority_correct(problem_samples: Sequence[dict[str, Any]]) -> bool:
    """maj@K: the most-voted extracted answer is equivalent to gold. Ties as in the engine's
    vote: the group with the shortest mean reasoning, then the one that appeared first."""
    def mean_reasoning(group: AnswerGroup) -> float:
        return sum(_reasoning_tokens(problem_samples[i]) for i in group.members) / len(group.members)

    result = vote([s.get("extracted") for s in problem_samples], tie_key=mean_reasoning)
    if result.winner is None:
        return False
    members = [problem_samples[i] for i in result.winner.members]
    if any(m.get("correct") for m in members):  # the group was graded against gold already
        return True
    gold = problem_samples[0].get("gold")
    return answers_equivalent(gold, result.winner.answer)


def _accuracy_block(samples: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    problems = _by_problem(samples)
    k = max(len(v) for v in problems.values()) if problems else 0
    n = len(problems)
    block: dict[str, Any] = {"problems": n, "samples": len(samples), "samples_per_problem": k}
    if k <= 1:
        block["pass@1"] = _rate(sum(1 for s in samples if s.get("correct")), len(samples))
        return block
    means = [sum(1 for s in v if s.get("correct")) / len(v) for v in problems.values()]
    low, high = mean_interval(means)
    block["pass@1"] = {"accuracy": sum(means) / n, "n": n, "ci95": [low, high],
                       "note": f"mean over {k} samples per problem"}
    block[f"pass@{k}"] = _rate(sum(1 for v in problems.values() if any(s.get("correct") for s in v)), n)
    if kind == "math":
        majority = [1.0 if _majority_correct(v) else 0.0 for v in problems.values()]
        block[f"maj@{k}"] = _rate(int(sum(majority)), n)
        # Paired on the same problems: what the vote adds over one sample of the same draws.
        diffs = [m - p for m, p in zip(majority, means)]
        block["maj_minus_pass1"] = {"difference": sum(diffs) / n, "ci95": list(difference_interval(diffs))}
        block["early_stop"] = _early_stop(problems.values())
    return block


def _early_stop(problems: Iterable[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """What the engine's early stop (`vote: true`) would have saved on these samples: each
    problem's vote replayed with the engine's answer rule in the order the samples finished.
    The eval itself never stops a sample (pass@K needs them all)."""
    total = kept = steps = steps_kept = stopped_problems = cancelled = 0
    for group in problems:
        lengths = [int((s.get("stats") or {}).get("completion_tokens") or 0) for s in group]
        votes = []
        for s, tokens in zip(group, lengths):
            answer, is_math = voting_answer(s.get("finish_reason") or "error", s.get("boxed"),
                                            s.get("answer") or "")
            votes.append((tokens, answer, is_math, _reasoning_tokens(s)))
        at, cut = replay_early_stop(votes)
        total += sum(lengths)
        kept += sum(lengths) if at < 0 else sum(min(t, at) for t in lengths)
        # Decoding together, a problem's samples take as many steps as the longest of them:
        # the request's latency, which the early stop shortens by cutting the longest.
        steps += max(lengths, default=0)
        steps_kept += max(lengths, default=0) if at < 0 else max(min(t, at) for t in lengths)
        if cut:
            stopped_problems += 1
            cancelled += len(cut)
    return {"completion_tokens": total, "with_early_stop": kept,
            "saved": (total - kept) / total if total else None,
            "steps": steps, "steps_with_early_stop": steps_kept,
            "steps_saved": (steps - steps_kept) / steps if steps else None,
            "problems_stopped_early": stopped_problems, "samples_cancelled": cancelled}


def _breakdown(samples: Sequence[dict[str, Any]], field: str) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        if s.get(field) is not None:
            groups[str(s[field])].append(s)
    return {name: _rate(sum(1 for s in g if s.get("correct")), len(g)) for name, g in sorted(groups.items())}


def _section_wall(samples: Sequence[dict[str, Any]]) -> float:
    """Wall time a section's samples took: per run, first submission to last finish, summed."""
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        by_run[s.get("run_id", "")].append(s)
    total = 0.0
    for run in by_run.values():
        starts = [s["t_submit_s"] for s in run if s.get("t_submit_s") is not None]
        ends = [s["t_end_s"] for s in run if s.get("t_end_s") is not None]
        if starts and ends:
            total += max(ends) - min(starts)
    return total


def _section(samples: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    stats = [s["stats"] for s in samples if s.get("stats")]
    n_stats = len(stats) or 1
    reasoning = sum(st.get("reasoning_tokens", 0) for st in stats)
    answer = sum(st.get("answer_tokens", 0) for st in stats)
    wall = _section_wall(samples)
    section = _accuracy_block(samples, kind)
    section.update({
        "mean_reasoning_tokens": reasoning / n_stats,
        "mean_answer_tokens": answer / n_stats,
        "completion_tokens": reasoning + answer,
        "wall_s": wall,
        "wall_s_per_sample": wall / len(samples) if samples else None,
        "mean_latency_s": sum(st.get("total_ms", 0.0) for st in stats) / n_stats / 1000.0,
        "tokens_per_s": (reasoning + answer) / wall if wall > 0 else None,
        "hit_length": sum(1 for s in samples if s.get("finish_reason") == "length"),
        "hit_thinking_budget": sum(1 for s in samples if s.get("reasoning_end") == "budget"),
        "hit_loop_guard": sum(1 for s in samples if s.get("reasoning_end") == "loop"),
        "no_answer": sum(1 for s in samples if s.get("extracted") is None),
        "errors": sum(1 for s in samples if s.get("finish_reason") in ("error", "timeout")),
    })
    if any(s.get("subject") for s in samples):
        section["by_subject"] = _breakdown(samples, "subject")
    if any(s.get("level") is not None for s in samples):
        section["by_level"] = _breakdown(samples, "level")
    return section


def summarize(samples: Iterable[dict[str, Any]], runs: Sequence[dict[str, Any]] = (),
              ends: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The report of a results file's samples (its `run` and `run_end` records add context)."""
    samples = list(samples)
    kinds = {r.get("task"): r.get("kind", "math") for r in runs}
    sections: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        sections[(s.get("task", ""), s.get("thinking_budget"))].append(s)
    out_sections = []
    for (task, budget), group in sorted(sections.items(), key=lambda kv: (kv[0][0], _budget_order(kv[0][1]))):
        kind = kinds.get(task) or ("code" if any("sandbox" in s for s in group) else "math")
        section = _section(group, kind)
        section.update({"task": task, "thinking_budget": budget, "budget_label": budget_label(budget)})
        out_sections.append(section)
    last = runs[-1] if runs else {}
    return {
        "model": last.get("model"), "preset": last.get("preset"), "n_slots": last.get("n_slots"),
        "temperature": last.get("temperature"), "machine": last.get("machine"),
        "runs": len(runs), "interrupted": _last_run_interrupted(runs, ends),
        "wall_s": sum(e.get("wall_s", 0.0) for e in ends),
        "sections": out_sections,
    }


def _last_run_interrupted(runs: Sequence[dict[str, Any]], ends: Sequence[dict[str, Any]]) -> bool:
    """The latest run was stopped early, or killed before it could write its end record."""
    if not runs:
        return bool(ends and ends[-1].get("interrupted"))
    last = runs[-1].get("run_id")
    end = next((e for e in reversed(ends) if e.get("run_id") == last or last is None), None)
    return end is None or bool(end.get("interrupted"))


def _budget_order(budget: Any) -> tuple[int, int]:
    if budget is None:
        return (2, 0)
    if budget == -1:
        return (1, 0)
    return (0, int(budget))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ci(block: dict[str, Any]) -> str:
    low, high = block["ci95"]
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def format_report(report: dict[str, Any]) -> str:
    lines = [f"model {report.get('model')} · preset {report.get('preset')} · "
             f"{report.get('n_slots')} slots · temperature {report.get('temperature')}"]
    if report.get("interrupted"):
        lines.append("(interrupted: the figures cover the samples done so far; --resume continues)")
    for s in report["sections"]:
        lines.append("")
        lines.append(f"{s['task']} · thinking budget {s['budget_label']} · {s['problems']} problems"
                     + (f" x {s['samples_per_problem']} samples" if s["samples_per_problem"] > 1 else ""))
        for metric in [m for m in s if m.startswith(("pass@", "maj@"))]:
            block = s[metric]
            count = f"{block['correct']}/{block['n']}" if "correct" in block else f"n={block['n']}"
            lines.append(f"  {metric:<8} {_pct(block['accuracy']):>6}  95% CI {_ci(block)}  ({count})")
        if "maj_minus_pass1" in s:
            block, k = s["maj_minus_pass1"], s["samples_per_problem"]
            low, high = block["ci95"]
            lines.append(f"  maj@{k} - pass@1: {100 * block['difference']:+.1f} points, paired 95% CI "
                         f"[{100 * low:+.1f}, {100 * high:+.1f}]")
        if s.get("early_stop"):
            e = s["early_stop"]
            lines.append(f"  early stop (the engine's vote rule, replayed): {_pct(e['saved'])} of "
                         f"{e['completion_tokens']} tokens saved, {_pct(e['steps_saved'])} of the decode "
                         f"steps, {e['samples_cancelled']} samples cancelled in "
                         f"{e['problems_stopped_early']} problems")
        lines.append(f"  tokens   {s['mean_reasoning_tokens']:.0f} reasoning + {s['mean_answer_tokens']:.0f} answer "
                     f"per sample (mean)")
        tps = s["tokens_per_s"]
        lines.append(f"  time     {s['wall_s']:.0f} s wall, {s['wall_s_per_sample'] or 0:.1f} s per sample, "
                     f"{s['mean_latency_s']:.1f} s mean latency, "
                     + (f"{tps:.1f} tokens/s aggregate" if tps else "- tokens/s"))
        lines.append(f"  ended    {s['hit_length']} at the length limit, {s['hit_thinking_budget']} at the "
                     f"thinking budget, {s['hit_loop_guard']} by the loop guard, {s['no_answer']} without an "
                     f"answer, {s['errors']} errors")
        for field in ("by_subject", "by_level"):
            if field in s:
                lines.append(f"  {field.replace('_', ' ')}:")
                for name, block in s[field].items():
                    lines.append(f"    {name:<24} {_pct(block['accuracy']):>6}  {_ci(block)}  "
                                 f"({block['correct']}/{block['n']})")
    return "\n".join(lines)


def compare(samples_a: Sequence[dict[str, Any]], samples_b: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired comparison per (task, thinking budget), on the problems present in both.

    With several samples per problem, only sample 0 of each is paired (McNemar's test needs
    one outcome per problem and system)."""
    def index(samples):
        table: dict[tuple[str, Any], dict[str, bool]] = defaultdict(dict)
        for s in samples:
            if int(s.get("sample", 0)) == 0:
                table[(s.get("task", ""), s.get("thinking_budget"))][str(s["id"])] = bool(s.get("correct"))
        return table

    a, b = index(samples_a), index(samples_b)
    out = []
    for key in sorted(set(a) & set(b), key=lambda k: (k[0], _budget_order(k[1]))):
        common = sorted(set(a[key]) & set(b[key]))
        result = paired_comparison([(a[key][i], b[key][i]) for i in common])
        out.append({"task": key[0], "thinking_budget": key[1], "budget_label": budget_label(key[1]),
                    "only_in_a": len(set(a[key]) - set(b[key])), "only_in_b": len(set(b[key]) - set(a[key])),
                    **result.to_dict()})
    return out


def format_comparison(rows: Sequence[dict[str, Any]], name_a: str, name_b: str) -> str:
    if not rows:
        return "the two result files share no task and thinking budget: nothing to compare"
    lines = [f"A = {name_a}", f"B = {name_b}"]
    for r in rows:
        low, high = r["ci95"]
        verdict = "significant" if r["significant"] else "not significant"
        lines.append("")
        lines.append(f"{r['task']} · thinking budget {r['budget_label']} · {r['n']} problems in both")
        lines.append(f"  A {_pct(r['accuracy_a'])}  B {_pct(r['accuracy_b'])}  "
                     f"A-B {100 * r['difference']:+.1f} points, 95% CI [{100 * low:+.1f}, {100 * high:+.1f}]")
        lines.append(f"  right only in A: {r['only_a']}, only in B: {r['only_b']}; McNemar exact "
                     f"p = {r['p_value']:.3g} ({verdict} at 0.05)")
        if r["only_in_a"] or r["only_in_b"]:
            lines.append(f"  (not paired: {r['only_in_a']} problems only in A, {r['only_in_b']} only in B)")
    return "\n".join(lines)
