"""Split a model's generated text into its reasoning (`<think>...</think>`) and its answer.

VibeThinker writes `<think>` as its first token, reasons, writes `</think>` and then answers.
Text reaches us in arbitrary pieces (one detokenized token at a time, or bigger chunks), so a
tag can be cut anywhere: "<th" + "ink>". The parser therefore holds back only the shortest
tail that could still turn into a tag and releases everything else at once, which keeps
streaming latency at one token while never leaking tag text into either channel.

Two template styles exist: the model writes `<think>` itself (the normal case), or the chat
template already ends the prompt with `<think>` (signalled by `start_in_reasoning=True`), in
which case the output holds only `</think>`.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeAlias

from vibe_edge.types import Channel

__all__ = [
    "DEFAULT_OPEN_TAG",
    "DEFAULT_CLOSE_TAG",
    "Piece",
    "ReasoningParser",
    "split_reasoning",
]

DEFAULT_OPEN_TAG = "<think>"
DEFAULT_CLOSE_TAG = "</think>"

Piece: TypeAlias = tuple[Channel, str]
"""One run of text on one channel: ("reasoning", text) or ("answer", text)."""

_REASONING: Channel = "reasoning"  # the values of vibe_edge.types.Channel
_ANSWER: Channel = "answer"


class _State(Enum):
    START = "start"          # nothing but whitespace seen yet: is a think block coming?
    REASONING = "reasoning"  # inside the think block, watching for the close tag
    ANSWER = "answer"        # after the think block, or a model that does not think


class ReasoningParser:
    """Streaming splitter of generated text into reasoning and answer pieces.

    Call `feed` with each new piece of text and `flush` once generation ends. Both return the
    pieces that are certain, adjacent pieces of one channel merged, empty pieces dropped.
    """

    def __init__(
        self,
        *,
        start_in_reasoning: bool = False,
        open_tag: str = DEFAULT_OPEN_TAG,
        close_tag: str = DEFAULT_CLOSE_TAG,
    ) -> None:
        if not open_tag or not close_tag:
            raise ValueError("open_tag and close_tag must be non-empty")
        self._open = open_tag
        self._close = close_tag
        self._prefilled = start_in_reasoning
        self._state = _State.START
        self._buf = ""            # text received but not yet released
        self._strip_leading = False  # drop whitespace at the start of the current channel
        self._saw_reasoning = start_in_reasoning
        self._closed = False
        self._flushed = False

    # -- state -------------------------------------------------------------------------------

    @property
    def in_reasoning(self) -> bool:
        """True while text fed now would count as reasoning."""
        if self._state is _State.START:
            return self._prefilled
        return self._state is _State.REASONING

    @property
    def reasoning_closed(self) -> bool:
        """True once the close tag has been seen."""
        return self._closed

    @property
    def saw_reasoning(self) -> bool:
        """True once a think block was opened (by the model or by a pre-filled template)."""
        return self._saw_reasoning

    # -- streaming ---------------------------------------------------------------------------

    def feed(self, text: str) -> list[Piece]:
        """Take the next piece of generated text; return the pieces that are certain now."""
        if self._flushed:
            raise RuntimeError("ReasoningParser.feed() called after flush()")
        out: list[Piece] = []
        if text:
            self._buf += text
            self._advance(out)
        return out

    def flush(self) -> list[Piece]:
        """Generation ended: release whatever was held back. Idempotent."""
        out: list[Piece] = []
        if self._flushed:
            return out
        self._flushed = True
        held, self._buf = self._buf, ""
        if self._state is _State.START:
            if self._prefilled:
                # Inside the pre-filled block: a dangling "<th" or "</thi" is reasoning text.
                _emit(out, _REASONING, held.lstrip())
            else:
                # Never saw a complete open tag, so the model did not think.
                _emit(out, _ANSWER, held)
        elif self._state is _State.REASONING:
            # Unterminated think block (length limit, cancel): what is left is reasoning.
            _emit(out, _REASONING, held.lstrip() if self._strip_leading else held)
        else:
            _emit(out, _ANSWER, held.lstrip() if self._strip_leading else held)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _advance(self, out: list[Piece]) -> None:
        # Each branch either consumes the buffer, holds a tail and returns, or switches state
        # and loops, so one feed can cross several boundaries ("<think>a</think>b").
        while self._buf:
            if self._state is _State.START:
                if not self._advance_start():
                    return
            elif self._state is _State.REASONING:
                if not self._advance_reasoning(out):
                    return
            else:
                self._advance_answer(out)
                return

    def _advance_start(self) -> bool:
        """Decide whether a think block opens. Returns False when more text is needed."""
        body = self._buf.lstrip()
        if not body:
            return False  # only whitespace so far: the tag may still come
        if body.startswith(self._open):
            # The model opened the block (in pre-filled mode a duplicate open tag is swallowed
            # rather than shown as reasoning text).
            self._enter_reasoning(body[len(self._open):])
            return True
        if self._prefilled and body.startswith(self._close):
            # Pre-filled block closed before any reasoning text.
            self._buf = body
            self._state = _State.REASONING
            return True
        could_be_tag = self._open.startswith(body) or (
            self._prefilled and self._close.startswith(body)
        )
        if could_be_tag:
            return False
        if self._prefilled:
            self._enter_reasoning(body)
        else:
            # First real output is not a think tag: this answer has no reasoning, and any later
            # "<think>" is ordinary answer text. Leading whitespace is kept, it is the answer's.
            self._state = _State.ANSWER
            self._strip_leading = False
        return True

    def _enter_reasoning(self, rest: str) -> None:
        self._state = _State.REASONING
        self._saw_reasoning = True
        self._strip_leading = True
        self._buf = rest

    def _advance_reasoning(self, out: list[Piece]) -> bool:
        if self._strip_leading:
            self._buf = self._buf.lstrip()
            if not self._buf:
                return False
            self._strip_leading = False
        end = self._buf.find(self._close)
        if end >= 0:
            _emit(out, _REASONING, self._buf[:end])
            self._buf = self._buf[end + len(self._close):]
            self._state = _State.ANSWER
            self._closed = True
            self._strip_leading = True  # the "\n\n" after </think> is layout, not answer
            return True
        keep = _partial_tag_suffix(self._buf, self._close)
        _emit(out, _REASONING, self._buf[: len(self._buf) - keep])
        self._buf = self._buf[len(self._buf) - keep:]
        return False

    def _advance_answer(self, out: list[Piece]) -> None:
        if self._strip_leading:
            self._buf = self._buf.lstrip()
            if not self._buf:
                return
            self._strip_leading = False
        # Everything after the think block is answer, a second close tag included.
        _emit(out, _ANSWER, self._buf)
        self._buf = ""


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest proper suffix of `text` that is a prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def _emit(out: list[Piece], channel: Channel, text: str) -> None:
    if not text:
        return
    if out and out[-1][0] == channel:
        out[-1] = (channel, out[-1][1] + text)
    else:
        out.append((channel, text))


def split_reasoning(text: str, start_in_reasoning: bool = False) -> tuple[str, str]:
    """Split a whole generated text into (reasoning, answer); same rules as the stream parser."""
    parser = ReasoningParser(start_in_reasoning=start_in_reasoning)
    parts: dict[Channel, list[str]] = {_REASONING: [], _ANSWER: []}
    for channel, piece in parser.feed(text) + parser.flush():
        parts[channel].append(piece)
    return "".join(parts[_REASONING]), "".join(parts[_ANSWER])
