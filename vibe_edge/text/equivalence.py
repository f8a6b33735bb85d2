"""Is this answer the same as that one? Final answers, math equivalence and majority votes.

Pure text processing (no engine, no I/O), shared by `vibe-edge eval` (grading against a gold
answer) and by anything that votes over several samples' answers (self-consistency):

    final_answer(text, number_fallback=True)    # last \\boxed{...}, else (GSM8K) the last number
    answers_equivalent("\\frac12", "0.5")       # True: by value, with Hugging Face's math-verify
    vote(["\\frac{1}{2}", "0.5", "3", None])    # the "1/2" group wins 2 votes to 1, one abstained

Equivalence is math-verify's: both sides are parsed from LaTeX (or plain expressions) into
SymPy and compared by value, as sets, intervals, tuples, matrices or relations, after its
normalisation (units and `\\text{}` wrappers dropped, `\\left`/`\\right` and spacing ignored).
It is not symmetric in general (the gold side decides how an equation or interval is read), so
the reference goes first.

Time: SymPy can be made to work for a very long time (`10^{10^{10}}`). On the main thread
math-verify bounds each parse and comparison with an alarm; off the main thread (an engine's
scheduler, a worker) alarms are unavailable, so answers longer than MAX_SYMBOLIC_CHARS are
compared as normalised strings only, which bounds the work by input size instead.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vibe_edge.text.boxed import extract_boxed

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_SYMBOLIC_CHARS",
    "AnswerGroup",
    "VoteResult",
    "answers_equivalent",
    "final_answer",
    "last_number",
    "normalize_answer_text",
    "vote",
]

DEFAULT_TIMEOUT_S = 5
"""Seconds math-verify may spend on one parse or comparison (main thread only: it uses SIGALRM)."""

MAX_SYMBOLIC_CHARS = 400
"""Longer answers are not handed to SymPy (compared as normalised text instead): a final answer
is short, and a long one is where parse time explodes."""

# A number as people write it in word problems: "-1,234.5", "$18", "0.75". Thousands separators
# are dropped; a trailing sentence period is not part of it.
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_SPACES = re.compile(r"\s+")
_LATEX_SPACING = re.compile(r"\\[,;:! ]|\\q?quad\b")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_DISPLAY_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")


def last_number(text: str) -> str | None:
    """The last number in `text` with thousands separators removed ("1,000." -> "1000"), or None."""
    found = None
    for match in _NUMBER.finditer(text):
        found = match.group(0)
    return None if found is None else found.replace(",", "")


def final_answer(text: str, *, number_fallback: bool = False) -> str | None:
    """The answer a response commits to: its last `\\boxed{...}`; with `number_fallback` (word
    problems whose answer is a number, as GSM8K), the last number when nothing is boxed."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    return last_number(text) if number_fallback else None


def normalize_answer_text(answer: str) -> str:
    """A cheap canonical text form: no whitespace, no LaTeX spacing or \\left/\\right, \\dfrac as
    \\frac, no surrounding $ or trailing period. Equal forms are equivalent answers."""
    text = answer.strip().strip("$").strip()
    text = _LATEX_SPACING.sub("", text)
    text = _LEFT_RIGHT.sub("", text)
    text = _DISPLAY_FRAC.sub(r"\\frac", text)
    text = _SPACES.sub("", text)
    return text.rstrip(".")


def _timeout_here(timeout_s: int | None) -> int | None:
    # math-verify's timeout is signal.alarm, which exists on the main thread only.
    return timeout_s if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=4096)
def _parsed(answer: str, timeout_s: int | None) -> tuple:
    """math-verify's parse of one final answer (cached: a gold answer is parsed once per run)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    _quiet_math_verify()
    # The answer is already extracted: wrap it in $...$ so the LaTeX extractor takes all of it.
    return tuple(parse(f"${answer}$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                       parsing_timeout=timeout_s))


@functools.cache
def _quiet_math_verify() -> None:
    # It warns (once) when its alarm is off, and logs every parse failure: expected here.
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def answers_equivalent(reference: str | None, candidate: str | None, *,
                       timeout_s: int | None = DEFAULT_TIMEOUT_S) -> bool:
    """True when `candidate` is the same answer as `reference` (a missing one never is).

    `reference` is the gold answer (or, in a vote, the group's first answer); both are final
    answers already extracted from their responses (the content of `\\boxed{}`).
    """
    if reference is None or candidate is None:
        return False
    ref_text, cand_text = normalize_answer_text(reference), normalize_answer_text(candidate)
    if not ref_text or not cand_text:
        return False
    if ref_text == cand_text:
        return True
    if len(ref_text) > MAX_SYMBOLIC_CHARS or len(cand_text) > MAX_SYMBOLIC_CHARS:
        return False
    from math_verify import verify

    timeout = _timeout_here(timeout_s)
    gold, target = _parsed(reference.strip(), timeout), _parsed(candidate.strip(), timeout)
    if not gold or not target:
        return False
    return bool(verify(list(gold), list(target), timeout_seconds=timeout))


@dataclass
class AnswerGroup:
    """Answers found equivalent to each other: `answer` is the first one seen (how it is shown)."""

    answer: str
    members: list[int] = field(default_factory=list)  # indices into the voted list

    @property
    def votes(self) -> int:
        return len(self.members)


@dataclass
class VoteResult:
    groups: list[AnswerGroup]   # most votes first; ties in order of first appearance
    abstained: list[int]        # indices of samples with no answer (they do not vote)

    @property
    def winner(self) -> AnswerGroup | None:
        return self.groups[0] if self.groups else None

    def tally(self) -> dict[str, int]:
        return {g.answer: g.votes for g in self.groups}


Equivalence = Callable[[str, str], bool]


def vote(answers: Sequence[str | None], *, equivalent: Equivalence | None = None,
         tie_key: Callable[[AnswerGroup], object] | None = None) -> VoteResult:
    """Majority vote over final answers (None: the sample gave no answer and abstains).

    Each answer joins the first group whose representative it is equivalent to (math-verify
    by default), else starts a new group. The winner has the most votes; ties are broken by
    `tie_key` (smallest wins, e.g. a group's mean reasoning length), else by which group
    appeared first, so the result never depends on hash order.
    """
    same = equivalent or answers_equivalent
    groups: list[AnswerGroup] = []
    abstained: list[int] = []
    for index, answer in enumerate(answers):
        if answer is None or not answer.strip():
            abstained.append(index)
            continue
        for group in groups:
            if same(group.answer, answer):
                group.members.append(index)
                break
        else:
            groups.append(AnswerGroup(answer, [index]))
    order = {id(g): i for i, g in enumerate(groups)}
    groups.sort(key=lambda g: (-g.votes, tie_key(g) if tie_key else 0, order[id(g)]))
    return VoteResult(groups, abstained)
