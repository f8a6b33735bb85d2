"""Modal screens: help, settings, rename, confirm, search, code-block picker."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option

from vibe_edge.presets import PRESETS
from vibe_edge.errors import VibeEdgeError
from vibe_edge.tui.options import ChatOptions
from vibe_edge.tui.store import Conversation

__all__ = ["ConfirmScreen", "HelpScreen", "PickerScreen", "SearchScreen", "SettingsScreen",
           "TextPromptScreen"]

_MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > .dialog {{
    width: 76; max-width: 100%; height: auto; max-height: 100%; border: thick $primary;
    background: $surface; padding: 0 1;
}}
{name} .title {{ text-style: bold; color: $primary; height: 1; margin: 0 0 1 0; }}
{name} .buttons {{ height: auto; align-horizontal: right; }}
{name} .buttons Button {{ margin: 0 0 0 1; min-width: 10; }}
"""


def _css(name: str) -> str:
    return _MODAL_CSS.format(name=name)


class HelpScreen(ModalScreen[None]):
    """Every key, as currently bound (the keymap file may have changed some)."""

    DEFAULT_CSS = _css("HelpScreen") + """
    HelpScreen > .dialog { height: 100%; max-height: 40; }
    HelpScreen VerticalScroll { height: 1fr; }
    """
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, rows: Sequence[tuple[str, str]], notes: Sequence[str] = ()) -> None:
        super().__init__()
        self.rows = list(rows)
        self.notes = list(notes)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True, pad_edge=False)
        table.add_column("Key", style="bold cyan", no_wrap=True, ratio=1)
        table.add_column("Action", ratio=3)
        for key, what in self.rows:
            table.add_row(key, what)
        with Vertical(classes="dialog"):
            yield Label("Keys  (Esc closes)", classes="title")
            with VerticalScroll():
                yield Static(table, id="help-table")
                for note in self.notes:
                    yield Static(Text(note, style="dim"))

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = _css("ConfirmScreen")
    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question), classes="title")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class TextPromptScreen(ModalScreen["str | None"]):
    DEFAULT_CSS = _css("TextPromptScreen")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text + "  (Enter saves, Esc cancels)", classes="title")
            yield Input(self.value, placeholder=self.placeholder, id="text")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PickerScreen(ModalScreen["str | None"]):
    """Pick one of several labelled items (code blocks to copy)."""

    DEFAULT_CSS = _css("PickerScreen") + "PickerScreen OptionList { height: auto; max-height: 16; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, items: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.items = list(items)  # (id, label)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text + "  (Enter picks, Esc cancels)", classes="title")
            yield OptionList(*[Option(Text(label, no_wrap=True, overflow="ellipsis"), id=i)
                               for i, label in self.items])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SearchScreen(ModalScreen["int | None"]):
    """Type to filter conversations by title and text; Enter (or Down then Enter) opens one."""

    DEFAULT_CSS = _css("SearchScreen") + """
    SearchScreen OptionList { height: auto; max-height: 14; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("down", "to_list", show=False)]

    def __init__(self, search: Callable[[str], list[Conversation]]) -> None:
        super().__init__()
        self.search = search

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Search conversations  (Enter opens, Esc cancels)", classes="title")
            yield Input(placeholder="words in a title, a question or an answer", id="query")
            yield OptionList(id="results")

    def on_mount(self) -> None:
        self._fill("")

    def _fill(self, query: str) -> None:
        results = self.query_one("#results", OptionList)
        results.clear_options()
        for conv in self.search(query)[:200]:
            results.add_option(Option(Text(conv.title, no_wrap=True, overflow="ellipsis"), id=str(conv.id)))
        if results.option_count:
            results.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        results = self.query_one("#results", OptionList)
        if results.option_count and results.highlighted is not None:
            option = results.get_option_at_index(results.highlighted)
            self.dismiss(int(option.id) if option.id else None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(int(event.option.id) if event.option.id else None)

    def action_to_list(self) -> None:
        self.query_one("#results", OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)


class SettingsScreen(ModalScreen["tuple[ChatOptions, str | None] | None"]):
    """Preset, system prompt, temperature, top_p, max tokens, thinking budget, samples, theme.
    Empty fields take the preset's value (samples: 1). Ctrl+S saves, Esc cancels. slots: the
    backend's, the most samples it can draw (None: unknown)."""

    DEFAULT_CSS = _css("SettingsScreen") + """
    SettingsScreen > .dialog { height: 100%; max-height: 34; }
    SettingsScreen VerticalScroll { height: 1fr; }
    SettingsScreen .row { height: auto; }
    SettingsScreen .row Label { width: 18; padding: 1 1 0 0; }
    SettingsScreen .row Input, SettingsScreen .row Select { width: 1fr; }
    SettingsScreen TextArea { height: 4; }
    SettingsScreen .error { color: $error; height: auto; }
    SettingsScreen .hint { color: $text-muted; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save", priority=True)]

    def __init__(self, options: ChatOptions, themes: Sequence[str], theme: str, *,
                 slots: int | None = None) -> None:
        super().__init__()
        self.options = options
        self.slots = slots
        self.themes = list(themes)
        self.theme_name = theme

    def compose(self) -> ComposeResult:
        o = self.options
        eff = o.effective()

        def num(value: object) -> str:
            return "" if value is None else str(value)

        with Vertical(classes="dialog"):
            yield Label("Settings  (Ctrl+S saves, Esc cancels)", classes="title")
            with VerticalScroll():
                with Horizontal(classes="row"):
                    yield Label("Preset")
                    yield Select([(f"{p.name}: {p.description}", p.name) for p in PRESETS.values()],
                                 value=o.preset, allow_blank=False, id="preset")
                yield Label("System prompt (empty: the preset's)")
                yield TextArea(o.system_prompt or "", id="system", soft_wrap=True,
                               placeholder=eff["system_prompt"] or "(none)")
                with Horizontal(classes="row"):
                    yield Label("Temperature")
                    yield Input(num(o.temperature), placeholder=f"{eff['temperature']} (preset)", id="temperature")
                with Horizontal(classes="row"):
                    yield Label("top_p")
                    yield Input(num(o.top_p), placeholder=f"{eff['top_p']} (preset)", id="top_p")
                with Horizontal(classes="row"):
                    yield Label("Max tokens")
                    yield Input(num(o.max_tokens), placeholder=f"{eff['max_tokens']} (preset)", id="max_tokens")
                with Horizontal(classes="row"):
                    yield Label("Thinking budget")
                    yield Input(num(o.thinking_budget),
                                placeholder=f"{eff['thinking_budget'] or 'none'} (preset; 0: no thinking, -1: none)",
                                id="thinking_budget")
                with Horizontal(classes="row"):
                    yield Label("Samples")
                    most = f"1..{self.slots}" if self.slots else "1 or more"
                    yield Input("" if o.samples == 1 else str(o.samples),
                                placeholder=f"1 ({most}; above 1: majority vote of that many answers)",
                                id="samples")
                with Horizontal(classes="row"):
                    yield Label("Theme")
                    yield Select([(t, t) for t in self.themes], value=self.theme_name
                                 if self.theme_name in self.themes else Select.NULL, id="theme")
                yield Static("", classes="error", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def _read(self) -> tuple[ChatOptions, str | None]:
        def number(field: str, kind: type) -> object:
            raw = self.query_one(f"#{field}", Input).value.strip()
            if not raw:
                return None
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{field.replace('_', ' ')}: {raw!r} is not a number") from None

        preset = self.query_one("#preset", Select).value
        system = self.query_one("#system", TextArea).text.strip() or None
        samples = number("samples", int)
        options = ChatOptions(
            preset=str(preset), system_prompt=system,
            temperature=number("temperature", float),  # type: ignore[arg-type]
            top_p=number("top_p", float),  # type: ignore[arg-type]
            max_tokens=number("max_tokens", int),  # type: ignore[arg-type]
            thinking_budget=number("thinking_budget", int),  # type: ignore[arg-type]
            loop_guard=self.options.loop_guard,
            samples=1 if samples is None else samples,  # type: ignore[arg-type]
        )
        options.validate(slots=self.slots)
        theme = self.query_one("#theme", Select).value
        return options, (str(theme) if theme is not Select.NULL and theme != Select.BLANK else None)

    def action_save(self) -> None:
        try:
            result = self._read()
        except (ValueError, VibeEdgeError) as exc:
            self.query_one("#error", Static).update(Text(f"✗ {getattr(exc, 'message', exc)}"))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)
