"""ReasoningParser: splitting a generation into reasoning and answer, whatever the chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibe_edge.text.reasoning import ReasoningParser, split_reasoning

# (generated text, template pre-filled <think>, expected reasoning, expected answer)
SAMPLES: list[tuple[str, bool, str, str]] = [
    # the normal VibeThinker shape
    ("<think>\nLet x = 2.\nThen x^2 = 4.\n</think>\n\nThe answer is \\boxed{4}.", False,
     "Let x = 2.\nThen x^2 = 4.\n", "The answer is \\boxed{4}."),
    # whitespace before the open tag is layout
    ("\n  <think>a</think>b", False, "a", "b"),
    # empty think block
    ("<think>\n\n</think>\n\nJust the answer.", False, "", "Just the answer."),
    # a model that does not think: everything is answer, a later <think> is text
    ("The answer is 4. <think>not a tag</think> really", False,
     "", "The answer is 4. <think>not a tag</think> really"),
    ("  Hello", False, "", "  Hello"),
    # text that merely starts like the tag
    ("<thinking>no</thinking>", False, "", "<thinking>no</thinking>"),
    ("<th", False, "", "<th"),
    # a second close tag after the block is answer text
    ("<think>r</think>a</think>b", False, "r", "a</think>b"),
    # near-misses of the close tag inside reasoning stay reasoning
    ("<think>a </thin k> < /think> <</think>ans", False, "a </thin k> < /think> <", "ans"),
    # unterminated think block: all reasoning
    ("<think>\nstill thinking ... </thi", False, "still thinking ... </thi", ""),
    # pre-filled template: only the close tag appears
    ("Let me see.\n</think>\n\n42", True, "Let me see.\n", "42"),
    ("\n</think>42", True, "", "42"),
    ("no close tag at all", True, "no close tag at all", ""),
    # pre-filled, yet the model repeats the open tag: swallowed, not shown as reasoning
    ("<think>\nhmm</think>ok", True, "hmm", "ok"),
    ("", False, "", ""),
    ("", True, "", ""),
]

TAG_LIKE = ["<think>", "</think>", "<", "</", "<th", "ink>", "think", ">", "/", " ", "\n", "a",
            "é", "<thi", "nk>"]


def run_chunks(chunks: list[str], prefilled: bool) -> tuple[str, str, list[tuple[str, str]]]:
    parser = ReasoningParser(start_in_reasoning=prefilled)
    pieces: list[tuple[str, str]] = []
    for chunk in chunks:
        pieces += parser.feed(chunk)
    pieces += parser.flush()
    reasoning = "".join(text for channel, text in pieces if channel == "reasoning")
    answer = "".join(text for channel, text in pieces if channel == "answer")
    return reasoning, answer, pieces


def chunk_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(set(cuts)), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


@pytest.mark.parametrize("text,prefilled,reasoning,answer", SAMPLES)
def test_whole_text(text: str, prefilled: bool, reasoning: str, answer: str) -> None:
    assert split_reasoning(text, start_in_reasoning=prefilled) == (reasoning, answer)


@pytest.mark.parametrize("text,prefilled,reasoning,answer", SAMPLES)
def test_every_single_split_point(text: str, prefilled: bool, reasoning: str, answer: str) -> None:
    for cut in range(len(text) + 1):
        got = run_chunks([text[:cut], text[cut:]], prefilled)[:2]
        assert got == (reasoning, answer), f"split at {cut}: {text[:cut]!r} | {text[cut:]!r}"


@pytest.mark.parametrize("text,prefilled,reasoning,answer", SAMPLES)
def test_one_character_at_a_time(text: str, prefilled: bool, reasoning: str, answer: str) -> None:
    assert run_chunks(list(text), prefilled)[:2] == (reasoning, answer)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_chunkings_of_samples(data: st.DataObject) -> None:
    text, prefilled, reasoning, answer = data.draw(st.sampled_from(SAMPLES))
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    assert run_chunks(chunk_at(text, cuts), prefilled)[:2] == (reasoning, answer)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(TAG_LIKE), max_size=25),
    cuts=st.lists(st.integers(0, 200), max_size=10),
    prefilled=st.booleans(),
)
def test_chunking_never_changes_the_result(parts: list[str], cuts: list[int], prefilled: bool) -> None:
    # Adversarial texts built from tag fragments: any chunking must agree with the whole text.
    text = "".join(parts)
    whole = split_reasoning(text, start_in_reasoning=prefilled)
    streamed_r, streamed_a, pieces = run_chunks(chunk_at(text, [c for c in cuts if c <= len(text)]),
                                                prefilled)
    assert (streamed_r, streamed_a) == whole
    assert all(piece for _, piece in pieces)
    # The open and close tags are never reasoning text, except as literal text after the
    # first close tag, which is answer. Reasoning itself never contains the close tag.
    assert "</think>" not in streamed_r


def test_tags_never_leak_into_channels() -> None:
    text = "<think>\nstep one\nstep two\n</think>\n\nfinal"
    for cut in range(len(text) + 1):
        reasoning, answer, pieces = run_chunks([text[:cut], text[cut:]], False)
        for _, piece in pieces:
            assert "<" not in piece and ">" not in piece


def test_streams_without_waiting_for_the_close_tag() -> None:
    parser = ReasoningParser()
    assert parser.feed("<th") == []                       # could still be the tag
    assert parser.feed("ink>\nHello wor") == [("reasoning", "Hello wor")]
    assert parser.in_reasoning and parser.saw_reasoning and not parser.reasoning_closed
    assert parser.feed("ld <") == [("reasoning", "ld ")]  # only "<" is held back
    assert parser.feed("b>") == [("reasoning", "<b>")]    # "<b" cannot become </think>
    assert parser.feed("</") == []
    assert parser.feed("think>\n\n") == []                # whitespace after the tag is dropped
    assert not parser.in_reasoning and parser.reasoning_closed
    assert parser.feed("\nAnswer") == [("answer", "Answer")]
    assert parser.feed(" </think>") == [("answer", " </think>")]
    assert parser.flush() == []


def test_one_feed_can_cross_both_tags_and_pieces_are_merged() -> None:
    parser = ReasoningParser()
    assert parser.feed("<think>a") + parser.feed("b</think>c") == [("reasoning", "a"),
                                                                   ("reasoning", "b"),
                                                                   ("answer", "c")]
    parser = ReasoningParser()
    assert parser.feed("<think>ab</think>cd") == [("reasoning", "ab"), ("answer", "cd")]


def test_model_that_does_not_think() -> None:
    parser = ReasoningParser()
    assert parser.feed("  ") == []  # undecided: the tag may still come
    assert parser.feed("4") == [("answer", "  4")]
    assert not parser.saw_reasoning and not parser.in_reasoning and not parser.reasoning_closed
    assert parser.feed("<think>") == [("answer", "<think>")]
    assert parser.flush() == []


def test_prefilled_starts_in_reasoning() -> None:
    parser = ReasoningParser(start_in_reasoning=True)
    assert parser.in_reasoning and parser.saw_reasoning
    assert parser.feed("\nFirst") == [("reasoning", "First")]
    assert parser.feed("</think>\n") == []
    assert parser.reasoning_closed and not parser.in_reasoning
    assert parser.feed("x") == [("answer", "x")]


def test_unterminated_think_is_flushed_as_reasoning() -> None:
    parser = ReasoningParser()
    assert parser.feed("<think>\nwork in progress </thin") == [("reasoning", "work in progress ")]
    assert parser.flush() == [("reasoning", "</thin")]
    assert not parser.reasoning_closed
    assert parser.flush() == []  # idempotent
    with pytest.raises(RuntimeError):
        parser.feed("more")


def test_custom_tags() -> None:
    parser = ReasoningParser(open_tag="<reason>", close_tag="</reason>")
    pieces = parser.feed("<reason>x</rea") + parser.feed("son>y") + parser.flush()
    assert pieces == [("reasoning", "x"), ("answer", "y")]
    with pytest.raises(ValueError):
        ReasoningParser(open_tag="")
