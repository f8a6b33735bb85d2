"""Find the final answer of a math response: the content of its last `\\boxed{...}`.

Math answers end in `\\boxed{...}` (the prompt asks for it). The content is LaTeX, so braces
nest (`\\boxed{\\frac{1}{2}}`) and `\\{` `\\}` are literal braces, not structure. `\\fbox{...}`
is accepted as a synonym, and `\\boxed 5` (TeX's brace-less form) takes one token.
"""

from __future__ import annotations

import re

__all__ = ["BOXED_COMMANDS", "extract_boxed"]

BOXED_COMMANDS = ("boxed", "fbox")
"""Command names (without backslash) whose argument is taken as the answer."""

# A command name ends at the first non-letter: "\boxedx" is another command.
_COMMAND = re.compile(r"\\(" + "|".join(BOXED_COMMANDS) + r")(?![A-Za-z])")
# Brace-less argument: a control word (\pi) or a run of plain characters (42, -3.5, x).
_BARE_TOKEN = re.compile(r"\\[A-Za-z]+|[^\s${}\\]+")
# Sentence punctuation that follows a brace-less answer ("\boxed 5.") is not part of it.
_TRAILING_PUNCT = ".,;:"


def extract_boxed(text: str) -> str | None:
    """The stripped content of the last well-formed `\\boxed{...}` in `text`, or None.

    Unterminated or unbalanced occurrences and empty boxes are skipped, so an earlier good box
    still counts. A box nested inside another belongs to the outer one.
    """
    found: str | None = None
    pos = 0
    while True:
        match = _COMMAND.search(text, pos)
        if match is None:
            return found
        if _escaped(text, match.start()):
            pos = match.end()
            continue
        content, end = _argument(text, match.end(), bare_allowed=match.group(1) == "boxed")
        if content is None:
            pos = match.end()  # malformed: look for later (or nested) boxes
            continue
        if content:
            found = content
        pos = end


def _escaped(text: str, backslash_at: int) -> bool:
    """True when the backslash at `backslash_at` is itself escaped (`\\\\boxed` is a line break)."""
    count = 0
    i = backslash_at - 1
    while i >= 0 and text[i] == "\\":
        count += 1
        i -= 1
    return count % 2 == 1


def _argument(text: str, start: int, *, bare_allowed: bool) -> tuple[str | None, int]:
    """Parse the command's argument at `start`: (stripped content or None, position after)."""
    i = start
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        return _braced(text, i)
    if bare_allowed and i > start:  # "\boxed 5" needs the space; "\boxed5" is not TeX we accept
        token = _BARE_TOKEN.match(text, i)
        if token is not None:
            value = token.group(0)
            if not value.startswith("\\"):
                value = value.rstrip(_TRAILING_PUNCT)
            return (value or None), token.end()
    return None, start


def _braced(text: str, open_at: int) -> tuple[str | None, int]:
    """Content of the balanced group opening at `open_at`, or None when it never closes."""
    depth = 0
    i = open_at
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # "\{", "\}" and "\\" are literal, never structure
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i].strip(), i + 1
        i += 1
    return None, len(text)
