"""The chat's widgets: the prompt input, messages (thinking block, answer, boxed answer,
notices, a reply's samples and their vote), the conversation list and the status line."""

from __future__ import annotations

import re
import time
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Collapsible, Markdown, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from vibe_edge.tui.samples import sample_line, tally_text
from vibe_edge.tui.store import COMPLETE, Conversation, StoredMessage

__all__ = [
    "AssistantMessage",
    "ChatView",
    "ConversationList",
    "PromptInput",
    "SampleBlock",
    "StatusLine",
    "ThinkingBlock",
    "UserMessage",
    "code_blocks",
]

NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter")

_STATUS_LABEL = {
    "stopped": "stopped",
    "length": "cut off at the token limit",
    "error": "error",
    "interrupted": "interrupted (the app closed while it streamed)",
    "streaming": "streaming in another window, or cut off",
}


class PromptInput(TextArea):
    """Multi-line prompt. Enter sends; Ctrl+J (or Shift+Enter / Alt+Enter where the terminal
    reports them) inserts a newline."""

    DEFAULT_CSS = """
    PromptInput { height: auto; min-height: 3; max-height: 8; }
    """

    class Submitted(Message):
        def __init__(self, input: PromptInput, text: str) -> None:
            super().__init__()
            self.input = input
            self.text = text

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("soft_wrap", True)
        kwargs.setdefault("show_line_numbers", False)
        kwargs.setdefault("placeholder", "Ask VibeThinker…  (Enter sends, Ctrl+J new line, F1 help)")
        super().__init__(**kwargs)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self.replace("\n", start, end)
            return
        await super()._on_key(event)


class UserMessage(Static):
    DEFAULT_CSS = """
    UserMessage {
        margin: 1 0 0 6; padding: 0 1; border: round $primary; border-title-color: $primary;
        height: auto; background: $boost;
    }
    """

    def __init__(self, text: str, message_id: int | None = None) -> None:
        super().__init__(Text(text), markup=False)
        self.text = text
        self.message_id = message_id
        self.border_title = "You"


class ThinkingBlock(Collapsible):
    """The model's reasoning: streams live, collapses when the answer begins, expands on demand."""

    DEFAULT_CSS = """
    ThinkingBlock { margin: 0; padding: 0; border-top: none; background: $surface; height: auto; }
    ThinkingBlock Contents { padding: 0 0 0 2; height: auto; }
    ThinkingBlock TextArea {
        height: auto; max-height: 14; border: none; padding: 0; color: $text-muted;
        background: $surface;
    }
    ThinkingBlock TextArea:focus { border: none; }
    """

    tokens: reactive[int] = reactive(0, init=False)

    def __init__(self, text: str = "", *, live: bool = True, tokens: int | None = None,
                 seconds: float | None = None) -> None:
        self._area = TextArea(text, read_only=True, soft_wrap=True, show_cursor=False,
                              highlight_cursor_line=False, compact=True)
        super().__init__(self._area, title="Thinking…", collapsed=not live)
        self.live = live
        self._pending: list[str] = []
        self._started = time.monotonic()
        self._seconds = seconds
        self._chars = len(text)
        self.set_reactive(ThinkingBlock.tokens, tokens or 0)
        if not live:
            self.title = self._done_title(tokens, seconds)

    @property
    def text(self) -> str:
        return self._area.text + "".join(self._pending)

    def append(self, text: str) -> None:
        self._pending.append(text)
        self._chars += len(text)
        self.tokens += 1

    def flush(self) -> None:
        """Move pending text into the view (called a few times a second, not per token)."""
        if not self._pending:
            return
        chunk = "".join(self._pending)
        self._pending.clear()
        area = self._area
        at_end = area.scroll_y >= area.max_scroll_y - 1
        area.insert(chunk, area.document.end, maintain_selection_offset=False)
        if at_end:
            area.scroll_end(animate=False)
        if self.live:
            elapsed = time.monotonic() - self._started
            self.title = f"Thinking… {self.tokens:,} token{'s' if self.tokens != 1 else ''} · {elapsed:.0f}s"

    def finish(self, *, collapse: bool = True, tokens: int | None = None) -> None:
        self.flush()
        if not self.live:
            return
        self.live = False
        self._seconds = time.monotonic() - self._started
        self.title = self._done_title(tokens or self.tokens, self._seconds)
        if collapse:
            self.collapsed = True

    @staticmethod
    def _done_title(tokens: int | None, seconds: float | None) -> str:
        parts = ["Thought"]
        if seconds is not None and seconds >= 2:
            parts.append(f"for {seconds:.0f}s")
        if tokens:
            parts.append(f"· {tokens:,} token{'s' if tokens != 1 else ''}")
        return " ".join(parts)


class BoxedAnswer(Static):
    DEFAULT_CSS = """
    BoxedAnswer {
        border: heavy $success; border-title-color: $success; border-title-style: bold;
        padding: 0 2; margin: 0 0 0 2; width: auto; min-width: 20; max-width: 100%; height: auto;
        text-style: bold; color: $text;
    }
    """

    def __init__(self, boxed: str) -> None:
        super().__init__(Text(boxed), markup=False)
        self.boxed = boxed
        self.border_title = "Final answer"


class NoticeLine(Static):
    DEFAULT_CSS = """
    NoticeLine { color: $warning; padding: 0 1 0 2; height: auto; }
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(Text("ⓘ " + message), markup=False)
        self.code = code
        self.message = message


class SampleBlock(Collapsible):
    """One sample of a reply drawn as several: its title is the sample's line (state, tokens,
    its answer once known); opened, its reasoning and its answer, each in its own widget.
    Collapsed by default: the reply's answer is the vote's winner, shown below."""

    DEFAULT_CSS = """
    SampleBlock { margin: 0; padding: 0; border-top: none; background: $surface; height: auto; }
    SampleBlock Contents { padding: 0 0 0 2; height: auto; }
    SampleBlock TextArea {
        height: auto; max-height: 10; border: none; padding: 0; color: $text-muted;
        background: $surface;
    }
    SampleBlock TextArea:focus { border: none; }
    SampleBlock .sample-answer { height: auto; padding: 0; }
    """

    def __init__(self, index: int, *, line: str | None = None, reasoning: str = "",
                 answer: str = "") -> None:
        self.index = index
        self.reasoning_area = TextArea(reasoning, read_only=True, soft_wrap=True, show_cursor=False,
                                       highlight_cursor_line=False, compact=True,
                                       classes="sample-reasoning")
        self.answer_view = Static(Text(answer), markup=False, classes="sample-answer")
        super().__init__(self.reasoning_area, self.answer_view,
                         title=line or f"#{index + 1} · queued", collapsed=True)
        self._reasoning = reasoning
        self._answer = answer
        self._pending: list[tuple[str, str]] = []

    @property
    def reasoning_text(self) -> str:
        return self._reasoning + "".join(t for c, t in self._pending if c == "reasoning")

    @property
    def answer_text(self) -> str:
        return self._answer + "".join(t for c, t in self._pending if c == "answer")

    def append(self, channel: str, text: str) -> None:
        self._pending.append((channel, text))

    def flush(self) -> None:
        """Move pending text into the view (a few times a second, as the Thinking block)."""
        if not self._pending:
            return
        reasoning = "".join(t for c, t in self._pending if c == "reasoning")
        answer = "".join(t for c, t in self._pending if c == "answer")
        self._pending.clear()
        if reasoning:
            self._reasoning += reasoning
            area = self.reasoning_area
            area.insert(reasoning, area.document.end, maintain_selection_offset=False)
        if answer:
            self._answer += answer
            self.answer_view.update(Text(self._answer))


class VoteTally(Static):
    DEFAULT_CSS = """
    VoteTally { color: $success; padding: 0 1 0 2; height: auto; }
    """

    def __init__(self, text: str) -> None:
        super().__init__(Text(text), markup=False)
        self.text = text


class AssistantMessage(Vertical):
    """One reply: thinking block, notices, the answer (Markdown), the boxed answer, a footer.
    A reply of several samples also has a block per sample (above the answer, which is then the
    vote's winner) and the tally under the boxed answer."""

    DEFAULT_CSS = """
    AssistantMessage {
        height: auto; margin: 1 0 0 0; padding: 0 1; border: round $secondary;
        border-title-color: $secondary;
    }
    AssistantMessage > Markdown { margin: 0; padding: 0 1; height: auto; }
    AssistantMessage > .footer { color: $text-muted; height: auto; padding: 0 1; }
    AssistantMessage > .footer.-stopped { color: $warning; }
    AssistantMessage > .footer.-error { color: $error; }
    AssistantMessage > .waiting { color: $text-muted; padding: 0 1; }
    AssistantMessage > .samples { height: auto; }
    """

    def __init__(self, *, model: str = "VibeThinker", message_id: int | None = None,
                 stored: StoredMessage | None = None) -> None:
        super().__init__()
        self.border_title = model
        self.message_id = message_id if stored is None else stored.id
        self.stored = stored
        self.thinking: ThinkingBlock | None = None
        self.answer_view = Markdown("")
        self.answer_text = ""
        self._stream: Any = None
        self._waiting = Static("waiting for the model…", classes="waiting")
        self._footer = Static("", classes="footer")
        self.boxed: BoxedAnswer | None = None
        self.notices: list[NoticeLine] = []
        self.sample_blocks: list[SampleBlock] = []
        self.tally: VoteTally | None = None

    def compose(self) -> ComposeResult:
        stored = self.stored
        if stored is None:
            yield self._waiting
            yield self.answer_view
            yield self._footer
            return
        record = stored.samples
        if record:
            vote = record.get("vote")
            self.sample_blocks = [
                SampleBlock(i, line=sample_line({**entry, "index": i}, vote),
                            reasoning=str(entry.get("reasoning") or ""),
                            answer=str(entry.get("answer") or ""))
                for i, entry in enumerate(record["samples"])]
            with Vertical(classes="samples"):
                yield from self.sample_blocks
        if stored.reasoning:
            stats = stored.stats or {}
            self.thinking = ThinkingBlock(stored.reasoning, live=False,
                                          tokens=stats.get("reasoning_tokens"),
                                          seconds=None)
            yield self.thinking
        for n in stored.notices:
            line = NoticeLine(n.get("code", ""), n.get("message", ""))
            self.notices.append(line)
            yield line
        self.answer_text = stored.content
        self.answer_view = Markdown(stored.content)
        yield self.answer_view
        if stored.boxed:
            self.boxed = BoxedAnswer(stored.boxed)
            yield self.boxed
        if record and stored.status != "stopped":  # stopped: there was no vote
            self.tally = VoteTally(tally_text(record.get("vote"), len(record["samples"])))
            yield self.tally
        self._footer.update(footer_text(stored.status, stored.stats, stored.error))
        self._footer.set_class(stored.status in ("stopped", "interrupted", "length"), "-stopped")
        self._footer.set_class(stored.status == "error", "-error")
        yield self._footer

    # -- streaming ---------------------------------------------------------------------------
    async def add_reasoning(self, text: str) -> None:
        if self.thinking is None:
            self.thinking = ThinkingBlock(live=True)
            await self.mount(self.thinking, before=self.answer_view)
            self._waiting.display = False
        self.thinking.append(text)

    async def add_answer(self, text: str) -> None:
        if not self.answer_text:
            self._waiting.display = False
            if self.thinking is not None and self.thinking.live:
                self.thinking.finish(collapse=True)
        self.answer_text += text
        if self._stream is None:
            self._stream = Markdown.get_stream(self.answer_view)
        await self._stream.write(text)

    async def add_notice(self, code: str, message: str) -> None:
        line = NoticeLine(code, message)
        self.notices.append(line)
        await self.mount(line, before=self.answer_view)

    def flush(self) -> None:
        if self.thinking is not None:
            self.thinking.flush()
        for block in self.sample_blocks:
            block.flush()

    # -- several samples ---------------------------------------------------------------------
    async def start_samples(self, n: int) -> None:
        self._waiting.display = False
        self.sample_blocks = [SampleBlock(i) for i in range(n)]
        await self.mount(Vertical(*self.sample_blocks, classes="samples"), before=self.answer_view)

    def add_sample_text(self, sample: int, channel: str, text: str) -> None:
        self.sample_blocks[sample].append(channel, text)

    def update_sample(self, sample: int, line: str) -> None:
        self.sample_blocks[sample].title = line

    async def show_winner(self, *, reasoning: str, answer: str, boxed: str | None,
                          tally: str, reasoning_tokens: int | None = None) -> None:
        """The vote is in: the winner's reasoning and answer as a reply's own, then its boxed
        answer and the tally."""
        self.flush()
        if reasoning and self.thinking is None:
            self.thinking = ThinkingBlock(reasoning, live=False, tokens=reasoning_tokens)
            await self.mount(self.thinking, before=self.answer_view)
        self.answer_text = answer
        await self.answer_view.update(answer)
        if boxed and self.boxed is None:
            self.boxed = BoxedAnswer(boxed)
            await self.mount(self.boxed, before=self._footer)
        self.tally = VoteTally(tally)
        await self.mount(self.tally, before=self._footer)

    async def finish(self, status: str, *, boxed: str | None = None,
                     stats: dict[str, Any] | None = None, error: str | None = None,
                     reasoning_tokens: int | None = None) -> None:
        self._waiting.display = False
        if self.thinking is not None:
            self.thinking.finish(collapse=bool(self.answer_text), tokens=reasoning_tokens)
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.stop()
        if boxed and self.boxed is None:
            self.boxed = BoxedAnswer(boxed)
            await self.mount(self.boxed, before=self._footer)
        self._footer.update(footer_text(status, stats or {}, error))
        self._footer.set_class(status in ("stopped", "interrupted", "length"), "-stopped")
        self._footer.set_class(status == "error", "-error")

    def finish_now(self, status: str, *, error: str | None = None) -> None:
        """Synchronous finish (Esc): mark the message without waiting for the stream."""
        self._waiting.display = False
        if self.thinking is not None:
            self.thinking.finish(collapse=bool(self.answer_text))
        self._footer.update(footer_text(status, {}, error))
        self._footer.set_class(status in ("stopped", "interrupted", "length"), "-stopped")
        self._footer.set_class(status == "error", "-error")

    @property
    def footer_text(self) -> str:
        return str(self._footer.render())


def footer_text(status: str, stats: dict[str, Any], error: str | None) -> str:
    parts: list[str] = []
    if status != COMPLETE:
        label = _STATUS_LABEL.get(status, status)
        parts.append(f"■ {label}" + (f": {error}" if error and status == "error" else ""))
    tps = stats.get("decode_tps")
    if tps:
        parts.append(f"{tps:.1f} tok/s")
    ttft = stats.get("ttft_ms")
    if ttft is not None:
        parts.append(f"first token {ttft / 1000:.1f}s" if ttft >= 1000 else f"first token {ttft:.0f}ms")
    rt, at = stats.get("reasoning_tokens"), stats.get("answer_tokens")
    if rt:
        parts.append(f"{rt:,} thinking + {at or 0:,} answer tokens")
    elif at:
        parts.append(f"{at:,} tokens")
    acceptance = stats.get("acceptance")
    if acceptance is not None:
        parts.append(f"drafts {100 * acceptance:.0f}% accepted")
    return " · ".join(parts)


class ChatView(VerticalScroll):
    """The conversation. Keeps to the bottom while streaming unless the user scrolls up."""

    DEFAULT_CSS = """
    ChatView { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    ChatView > .empty { color: $text-muted; padding: 1 2; }
    """
    can_focus = True


class ConversationList(OptionList):
    DEFAULT_CSS = """
    ConversationList { width: 28; dock: left; height: 1fr; border-right: tall $panel; }
    """

    class Picked(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def set_conversations(self, conversations: list[Conversation], current: int | None) -> None:
        self.clear_options()
        for conv in conversations:
            self.add_option(Option(Text(conv.title, overflow="ellipsis", no_wrap=True), id=str(conv.id)))
        if current is not None:
            try:
                self.highlighted = self.get_option_index(str(current))
            except Exception:
                pass

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.Picked(int(event.option.id)))


class StatusLine(Static):
    """model · preset · state · first-token time · tokens/s · context used · thinking budget."""

    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $text; padding: 0 0 0 1; }
    """

    def show(self, *, model: str, preset: str, state: str, ttft_ms: float | None = None,
             tps: float | None = None, ctx_used: int | None = None, ctx_size: int | None = None,
             think_used: int | None = None, think_budget: int | None = None) -> None:
        parts = [preset, state]
        if ttft_ms is not None:
            parts.append(f"ttft {ttft_ms / 1000:.1f}s" if ttft_ms >= 1000 else f"ttft {ttft_ms:.0f}ms")
        if tps:
            parts.append(f"{tps:.1f} tok/s" if tps < 10 else f"{tps:.0f} tok/s")
        if ctx_used is not None:
            parts.append(f"ctx {_k(ctx_used)}/{_k(ctx_size)}" if ctx_size else f"ctx {_k(ctx_used)}")
        if think_used is not None and think_budget:
            parts.append(f"think {_k(think_used)}/{_k(think_budget)}")
        elif think_used:
            parts.append(f"think {_k(think_used)}")
        rest = " · ".join(parts)
        # The model name gives way first, so the figures stay visible at 80 columns.
        room = (self.size.width or 80) - 1 - len(rest) - 3
        if len(model) > room:
            model = model[:max(room - 1, 6)] + "…"
        self.plain = f"{model} · {rest}"
        self.update(Text(self.plain, no_wrap=True, overflow="ellipsis"))

    plain: str = ""


def _k(n: int) -> str:
    """1234 -> 1.2k, 32768 -> 33k: the status line must fit 80 columns."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1000:.0f}k"


_FENCE = re.compile(r"^(```+|~~~+)([^\n`]*)\n(.*?)^\1[ \t]*$", re.M | re.S)


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced code block, in order."""
    return [(m.group(2).strip(), m.group(3)) for m in _FENCE.finditer(markdown)]
