"""Answer equivalence (math-verify) and majority voting: the pure part shared by eval and votes."""

from __future__ import annotations

import threading

import pytest

from vibe_edge.text.equivalence import (
    MAX_SYMBOLIC_CHARS,
    answers_equivalent,
    final_answer,
    last_number,
    normalize_answer_text,
    vote,
)

EQUIVALENT = [
    # fractions and decimals
    ("0.5", "\\frac12"),
    ("\\frac{1}{2}", "\\dfrac{1}{2}"),
    ("\\frac{14}{3}", "14/3"),
    ("\\frac{14}{3}", "4.666666666666"),
    ("18", "18.00"),
    ("1,000", "1000"),
    # LaTeX spacing and \left / \right
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)"),
    ("p - q", "p-q"),
    ("x^2 + 1", "1 + x^{2}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("3\\,\\text{cm}", "3"),
    # intervals and tuples and sets
    ("[2,5)", "[2, 5)"),
    ("(-\\infty, 3]", "\\left(-\\infty,3\\right]"),
    ("(1, 2)", "\\left(1,2\\right)"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    # units, percent, degrees, currency
    ("5", "5\\text{ cm}"),
    ("10", "10\\%"),
    ("90^\\circ", "90"),
    ("\\$18", "18"),
    # \text{}
    ("\\text{Evelyn}", "Evelyn"),
    ("\\text{(C)}", "C"),
]

NOT_EQUIVALENT = [
    ("\\frac{1}{3}", "0.33"),
    ("3", "4"),
    ("(3,\\pi/2)", "(3,\\pi)"),
    ("[2,5)", "(2,5)"),
    ("[2,5)", "[2,5]"),
    ("(1,2)", "(2,1)"),
    ("\\text{Evelyn}", "\\text{Bob}"),
    ("5", "5\\sqrt{2}"),
    ("x^2+1", "x^2-1"),
    ("10^{10^{10}}", "10^{10^{10}}+1"),
]


@pytest.mark.parametrize(("gold", "candidate"), EQUIVALENT)
def test_equivalent_pairs(gold, candidate):
    assert answers_equivalent(gold, candidate)


@pytest.mark.parametrize(("gold", "candidate"), NOT_EQUIVALENT)
def test_non_equivalent_pairs(gold, candidate):
    assert not answers_equivalent(gold, candidate)


def test_missing_or_empty_answers_are_never_equivalent():
    assert not answers_equivalent("3", None)
    assert not answers_equivalent(None, "3")
    assert not answers_equivalent("", "")
    assert not answers_equivalent("3", "   ")


def test_normalized_text_is_a_fast_path_without_sympy():
    assert normalize_answer_text(" \\left( 1,\\; 2 \\right). ") == "(1,2)"
    assert normalize_answer_text("\\dfrac{1}{2}") == "\\frac{1}{2}"


def test_long_answers_are_compared_as_text_only():
    long = "+".join(["x"] * (MAX_SYMBOLIC_CHARS // 2 + 10))
    assert answers_equivalent(long, long)
    assert not answers_equivalent(long, long.replace("x", "y", 1))


def test_works_off_the_main_thread():
    # math-verify's alarm only exists on the main thread: an engine thread must still work.
    results = {}

    def worker():
        results["eq"] = answers_equivalent("\\frac{1}{2}", "0.5")
        results["ne"] = answers_equivalent("\\frac{1}{2}", "0.6")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(60)
    assert results == {"eq": True, "ne": False}


def test_final_answer_prefers_the_last_box_then_the_last_number():
    assert final_answer("first \\boxed{1}, then \\boxed{\\frac{2}{3}} and 7") == "\\frac{2}{3}"
    assert final_answer("she makes 18 dollars, or 1,234.") is None
    assert final_answer("she makes 18 dollars, or 1,234.", number_fallback=True) == "1234"
    assert final_answer("no numbers at all", number_fallback=True) is None


def test_last_number_reads_signs_decimals_and_separators():
    assert last_number("from -3 to 2.50 dollars") == "2.50"
    assert last_number("the loss is -12") == "-12"
    assert last_number("a total of 1,200,000 people.") == "1200000"
    assert last_number("v2 of x3") is None  # digits inside words are not numbers


def test_vote_groups_equivalent_answers_and_ignores_missing_ones():
    result = vote(["\\frac{1}{2}", "0.5", "3", None, "3", "3", "  "])
    assert result.winner.answer == "3"
    assert result.winner.members == [2, 4, 5]
    assert result.tally() == {"3": 3, "\\frac{1}{2}": 2}
    assert result.abstained == [3, 6]


def test_vote_ties_go_to_the_first_group_unless_a_tie_key_decides():
    assert vote(["7", "\\frac{1}{2}", "0.5", "7"]).winner.answer == "7"
    lengths = {0: 900, 1: 100, 2: 120, 3: 800}  # e.g. reasoning tokens per sample
    shortest = vote(["7", "\\frac{1}{2}", "0.5", "7"],
                    tie_key=lambda g: sum(lengths[i] for i in g.members) / g.votes)
    assert shortest.winner.answer == "\\frac{1}{2}"


def test_vote_with_no_answers_has_no_winner():
    result = vote([None, None])
    assert result.winner is None and result.abstained == [0, 1]


def test_vote_takes_another_equivalence():
    result = vote(["A", "a", "b"], equivalent=lambda x, y: x.lower() == y.lower())
    assert result.winner.votes == 2
