"""extract_boxed: the last well-formed \\boxed{...} of a math answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vibe_edge.text.boxed import extract_boxed


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"The answer is \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"$\boxed{\sqrt{\frac{a^{2}}{b_{1}}}}$", r"\sqrt{\frac{a^{2}}{b_{1}}}"),
        (r"first \boxed{1}, then \boxed{2}, finally \boxed{3}", "3"),
        (r"\fbox{7}", "7"),
        (r"\boxed{1} and \fbox{2}", "2"),
        (r"\boxed 5", "5"),
        (r"so it is \boxed 5.", "5"),
        (r"\boxed -3.5 done", "-3.5"),
        (r"$\boxed \pi$", r"\pi"),
        (r"\boxed{ 12 }", "12"),
        (r"\boxed {x+1}", "x+1"),  # TeX allows a space before the group
        # escaped braces are content, not structure
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{\}}", r"\}"),
        (r"\boxed{a \\ b}", r"a \\ b"),
        # a malformed later box does not hide an earlier good one
        (r"\boxed{3} but \boxed{4", "3"),
        (r"\boxed{3} \boxed", "3"),
        # an unterminated outer box: a complete inner one still counts
        (r"\boxed{\boxed{9} never closed", "9"),
        # a box inside a box belongs to the outer one
        (r"\boxed{\boxed{1}+1}", r"\boxed{1}+1"),
        # extra closing brace after a balanced group is just text
        (r"\boxed{a}}", "a"),
        # empty boxes (often echoed from the prompt) carry no answer
        (r"\boxed{7} as asked in \boxed{}", "7"),
        (r"put your answer within \boxed{}", None),
        ("no box here", None),
        ("", None),
        (r"\boxed{unterminated", None),
        (r"\boxed", None),
        (r"\boxed5", None),          # not TeX we accept
        (r"\boxedx{5}", None),       # a different command
        (r"\\boxed{5}", None),       # "\\" is a line break, then plain text "boxed{5}"
        (r"\\\boxed{5}", "5"),       # line break, then a real \boxed
        (r"\fbox 5", None),          # the brace-less form is \boxed's only
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


@given(st.text(alphabet="\\{}boxedfx 12$", max_size=60))
def test_never_raises_and_result_is_balanced(text: str) -> None:
    result = extract_boxed(text)
    if result is not None and not result.startswith("\\"):
        # Structural braces in the result are balanced (escaped ones ignored).
        depth = 0
        i = 0
        while i < len(result):
            if result[i] == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(result[i], 0)
            assert depth >= 0
            i += 1
        assert depth == 0


@given(st.text(alphabet=st.characters(blacklist_characters="{}\\"), min_size=1, max_size=30))
def test_roundtrip_plain_content(content: str) -> None:
    expected = content.strip() or None
    assert extract_boxed("Answer: \\boxed{" + content + "} end") == expected
