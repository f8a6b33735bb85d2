"""Turning a token stream into text safely: whole UTF-8 characters, and stop strings that are
matched across token boundaries and never leak into the output."""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class Detokenizer:
    """Bytes of token pieces in, complete characters out.

    A character can be split over several tokens (emoji, CJK in byte-fallback vocabularies):
    the incremental decoder holds the partial bytes until the character is complete.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        return self._decoder.decode(piece)

    def flush(self) -> str:
        """At the end of generation: whatever is left (a truncated character becomes U+FFFD)."""
        return self._decoder.decode(b"", final=True)


class StopMatcher:
    """Finds the first stop string in a stream of text pieces.

    `feed` returns (text safe to emit, stopped). Text that could be the beginning of a stop
    string is held back until the next piece decides; on a stop, the stop string and anything
    after it are dropped.
    """

    def __init__(self, stops: Sequence[str]):
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self._longest = max((len(s) for s in self._stops), default=0)

    def feed(self, text: str) -> tuple[str, bool]:
        if not self._stops:
            return text, False
        buffer = self._held + text
        cut = min((i for i in (buffer.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            return buffer[:cut], True
        keep = self._partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep:] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest suffix of `buffer` that is a proper prefix of a stop string."""
        for n in range(min(len(buffer), self._longest - 1), 0, -1):
            tail = buffer[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0
