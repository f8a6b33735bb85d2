"""ChatApp: the Textual chat for reasoning models.

Each reply is one asyncio worker feeding a backend's event stream to a ReplySession
(tui/session.py: the reply's state machine and its history rows, without widgets), which draws
on the reply's AssistantMessage; Esc stops the session (saved at once), cancels the stream and
the worker. The reasoning streams into a Thinking block that collapses when the answer begins;
the answer streams as Markdown; a final \\boxed{} answer gets its own box.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static
from textual.worker import Worker

from vibe_edge.errors import VibeEdgeError
from vibe_edge.presets import PRESETS
from vibe_edge.tui.backends import Backend
from vibe_edge.tui.export import export_conversation
from vibe_edge.tui.keys import ALWAYS_ALLOWED, INPUT_KEYS, KEYS
from vibe_edge.tui.keys import pretty_key as _pretty
from vibe_edge.tui.options import ChatOptions, build_request
from vibe_edge.tui.screens import (
    ConfirmScreen,
    HelpScreen,
    PickerScreen,
    SearchScreen,
    SettingsScreen,
    TextPromptScreen,
)
from vibe_edge.tui.session import ReplySession
from vibe_edge.tui.store import ERROR, STREAMING, HistoryError, HistoryStore
from vibe_edge.tui.widgets import (
    AssistantMessage,
    ChatView,
    ConversationList,
    PromptInput,
    StatusLine,
    UserMessage,
    code_blocks,
)

__all__ = ["ChatApp", "INPUT_KEYS", "KEYS"]  # KEYS and INPUT_KEYS live in tui.keys


class ChatApp(App[None]):
    TITLE = "vibe-edge chat"
    CSS = """
    Screen { layout: vertical; }
    #main { height: 1fr; }
    #chat-column { height: 1fr; }
    #input-row { height: auto; padding: 0 1; }
    PromptInput { border: round $accent; }
    #editing { display: none; color: $warning; padding: 0 1; height: 1; }
    #editing.-on { display: block; }
    ConversationList { display: none; }
    ConversationList.-visible { display: block; }
    #load-error { color: $error; padding: 1 2; height: auto; }
    """
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, backend: Backend, *, history: HistoryStore | str | Path,
                 options: ChatOptions | None = None, export_dir: str | Path = ".",
                 keymap: Mapping[str, str] | None = None, sidebar: bool | None = None,
                 save_interval: float = 1.0, theme: str | None = None,
                 ui_interval: float = 0.1, pin_preset: bool = False,
                 max_tokens: int | None = None) -> None:
        """pin_preset: the preset in `options` was asked for explicitly (`--preset`), so the
        conversation reopened at start-up does not switch it back to its own. max_tokens: the
        settings' cap on any reply (None: what the backend's context holds)."""
        self._keys = {action: key for action, key, *_ in KEYS}
        for action, key in (keymap or {}).items():
            self._keys[action] = key
        super().__init__()
        self.backend = backend
        self.store = history if isinstance(history, HistoryStore) else HistoryStore(history)
        self._owns_store = not isinstance(history, HistoryStore)
        saved = self.store.get_pref("options")
        self.options = options or (ChatOptions.from_dict(saved) if saved else ChatOptions())
        self.export_dir = Path(export_dir)
        self.save_interval = save_interval
        self.ui_interval = ui_interval
        self._sidebar_pref = sidebar
        self._theme_arg = theme
        self._pin_preset = pin_preset
        self.max_tokens = max_tokens
        self.conversation_id: int | None = None
        self.reply: ReplySession | None = None
        self._worker: Worker | None = None
        self._backend_ready = asyncio.Event()
        self._backend_error: str | None = None
        self._editing_message_id: int | None = None
        # Set when the database fails under the app: nothing more is written, what the user
        # typed stays on screen, and the app exits with status 1.
        self.history_error: HistoryError | None = None
        self.unsaved_text: str | None = None

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ConversationList(id="conversations")
            with Vertical(id="chat-column"):
                yield ChatView(id="chat")
                yield Static("", id="editing")
                with Vertical(id="input-row"):
                    yield PromptInput(id="prompt")
        yield StatusLine(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        for action, default, short, _description, show in KEYS:
            key = self._keys.get(action, default)
            priority = action in ("scroll_up", "scroll_down", "stop")
            self._bindings.bind(key, action, short, show=show, priority=priority)
        self.refresh_bindings()
        theme = self._theme_arg or self.store.get_pref("theme")
        if theme and theme in self.available_themes:
            self.theme = theme
        wide = self.size.width >= 110
        if self._sidebar_pref if self._sidebar_pref is not None else wide:
            self.query_one(ConversationList).add_class("-visible")
        self.refresh_conversations()
        convs = self.store.list_conversations()
        if convs:
            self.call_after_refresh(self.open_conversation, convs[0].id,
                                    follow_preset=not self._pin_preset)
        else:
            self._show_empty()
        self.query_one(PromptInput).focus()
        self.set_interval(self.ui_interval, self._tick)
        self._update_status()
        self._start_backend()

    def get_system_commands(self, screen: Screen) -> Any:
        yield from super().get_system_commands(screen)
        for action, _key, _short, description, _show in KEYS:
            if action in ("quit", "scroll_up", "scroll_down"):
                continue
            yield SystemCommand(description.split(" (")[0].split(":")[0], description,
                                getattr(self, f"action_{action}"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen) and action in self._keys and action not in ALWAYS_ALLOWED:
            return False
        return True

    # -- backend --------------------------------------------------------------------------------
    @work(group="backend", exclusive=True)
    async def _start_backend(self) -> None:
        try:
            await self.backend.start()
        except VibeEdgeError as exc:
            self._backend_error = str(exc)
        except Exception as exc:  # a loading failure must not crash the history browser
            self._backend_error = f"{type(exc).__name__}: {exc}"
        if self._backend_error:
            self.notify(self._backend_error, title="Model not available", severity="error", timeout=30)
        for note in self.backend.notices:
            self.notify(note, timeout=15)
        self._backend_ready.set()
        self._update_status()

    @property
    def state(self) -> str:
        if self.reply is not None and not self.reply.done:
            return self.reply.state
        if self._backend_error:
            return "unavailable"
        if not self._backend_ready.is_set():
            return "loading model…"
        return "ready"

    def _update_status(self) -> None:
        reply = self.reply
        backend = self.backend
        kwargs: dict[str, Any] = {}
        if reply is not None:
            used = reply.prompt_tokens + reply.reasoning_tokens + reply.answer_tokens
            kwargs = dict(ttft_ms=reply.ttft_ms, tps=reply.tps,
                          ctx_used=used or backend.context_used(), ctx_size=backend.context_size,
                          think_used=reply.reasoning_tokens or None, think_budget=reply.budget)
        try:
            status = self.query_one(StatusLine)
        except Exception:
            return
        preset = self.options.preset
        if self.options.samples > 1:  # a voting chat says so: its replies take n times the work
            preset += f" ×{self.options.samples}"
        status.show(model=backend.model_name, preset=preset, state=self.state, **kwargs)

    def on_resize(self) -> None:
        self.call_after_refresh(self._update_status)

    def _tick(self) -> None:
        reply = self.reply
        if reply is not None and not reply.done and self.history_error is None:
            try:
                reply.tick(self.save_interval)
            except HistoryError as exc:
                self.run_worker(self._history_failed(exc), group="history-error")
            self._update_status()

    # -- conversations --------------------------------------------------------------------------
    def refresh_conversations(self) -> None:
        self.query_one(ConversationList).set_conversations(self.store.list_conversations(),
                                                           self.conversation_id)

    def _show_empty(self) -> None:
        chat = self.query_one(ChatView)
        chat.remove_children()
        chat.mount(Static(Text(
            "New chat. Ask a competition math or coding question; VibeThinker thinks first "
            "(the Thinking block), then answers.\nEnter sends · Ctrl+J new line · F1 all keys"),
            classes="empty"))

    async def open_conversation(self, conversation_id: int, *, follow_preset: bool = True) -> None:
        if self._busy("switch conversations"):
            return
        conv = self.store.get_conversation(conversation_id)
        if conv is None:
            return
        self.conversation_id = conv.id
        self._cancel_edit()
        chat = self.query_one(ChatView)
        await chat.remove_children()
        widgets = []
        for m in self.store.messages(conv.id):
            if m.role == "user":
                widgets.append(UserMessage(m.content, m.id))
            elif m.role == "assistant":
                widgets.append(AssistantMessage(model=conv.model or self.backend.model_name, stored=m))
        if widgets:
            await chat.mount_all(widgets)
        chat.scroll_end(animate=False)
        self.sub_title = conv.title
        if follow_preset:
            self._use_conversation_preset(conv.preset)
            self._use_conversation_samples(conv.samples)
        self.refresh_conversations()
        self._update_status()

    def _use_conversation_preset(self, preset: str | None) -> None:
        """A conversation keeps the preset it was held in: reopening a math chat answers in
        math mode even if the last chat used code. Only the preset follows the conversation; the
        user's own overrides (temperature, budget, ...) stay as set."""
        if not preset or preset == self.options.preset or preset not in PRESETS:
            return  # unknown: a preset removed since, or a row written by an older version
        self.options = dataclasses.replace(self.options, preset=preset)
        self.notify(f"Preset: {preset} (this conversation's).", timeout=3)

    def _use_conversation_samples(self, samples: int | None) -> None:
        """The samples option is the conversation's too: a chat held in majority vote goes on
        voting when reopened, a plain one stays plain."""
        if not isinstance(samples, int) or samples < 1 or samples == self.options.samples:
            return  # None: a conversation from before the option; it keeps the current one
        self.options = dataclasses.replace(self.options, samples=samples)
        self.notify(f"Samples: {samples} (this conversation's).", timeout=3)

    def _busy(self, what: str) -> bool:
        if self.reply is not None and not self.reply.done:
            key = self._keys["stop"]
            self.notify(f"A reply is still being written; press {_pretty(key)} to stop it first "
                        f"(then {what}).", severity="warning")
            return True
        return False

    @on(ConversationList.Picked)
    async def _picked(self, event: ConversationList.Picked) -> None:
        await self.open_conversation(event.conversation_id)
        self.query_one(PromptInput).focus()

    # -- sending --------------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    async def _submitted(self, event: PromptInput.Submitted) -> None:
        text = event.text.strip()
        if not text:
            return
        if self.history_error is not None:
            self.notify("The chat history cannot be written, so nothing can be sent; your text "
                        "stays in the box. Copy it, then quit (Ctrl+Q).", severity="error")
            return
        if self._busy("send"):
            return
        try:
            if self._editing_message_id is not None and self.conversation_id is not None:
                self.store.delete_messages_from(self.conversation_id, self._editing_message_id)
                await self.open_conversation(self.conversation_id, follow_preset=False)  # a redraw
            self._cancel_edit()
            self.query_one(PromptInput).clear()
            await self.send(text)
        except HistoryError as exc:
            await self._history_failed(exc, unsaved=text)

    async def _history_failed(self, exc: HistoryError, *, unsaved: str | None = None) -> None:
        """The database failed under us: say so, keep the unsaved text on screen, stop writing,
        and make the exit status 1."""
        first = self.history_error is None
        self.history_error = exc
        reply = self.reply
        if reply is not None and not reply.done:
            reply.done = reply.shown = True
            if reply.stream is not None:
                reply.stream.cancel()
            if self._worker is not None:
                self._worker.cancel()
        if unsaved:
            self.unsaved_text = unsaved
            prompt = self.query_one(PromptInput)
            if not prompt.text.strip():
                prompt.text = unsaved
                prompt.move_cursor(prompt.document.end)
            prompt.focus()
        if first:
            what = ("Your message was not saved: it is still in the box below. " if unsaved else "")
            await self.query_one(ChatView).mount(Static(Text(
                f"The chat history failed: {exc.message}. {what}Nothing more will be saved. "
                f"{exc.hint or ''} Quit with {_pretty(self._keys['quit'])}.".strip()),
                id="history-error"))
            self.notify(exc.message, title="Chat history failed", severity="error", timeout=600)
        self._update_status()

    def _handle_exception(self, error: Exception) -> None:
        # A history failure in any handler not guarded above: the same clear handling, not a
        # traceback (Textual's default for an unhandled exception is to crash the app).
        if isinstance(error, HistoryError):
            self.run_worker(self._history_failed(error), group="history-error")
            return
        super()._handle_exception(error)

    async def send(self, text: str) -> None:
        """Save the prompt, show it, and start the reply."""
        chat = self.query_one(ChatView)
        if self.conversation_id is None:
            title = _title(text)
            conv = self.store.create_conversation(title, preset=self.options.preset,
                                                  model=self.backend.model_name,
                                                  samples=self.options.samples)
            self.conversation_id = conv.id
            self.sub_title = title
            await chat.remove_children()
        user = self.store.add_message(self.conversation_id, "user", text)  # saved before generating
        await chat.mount(UserMessage(text, user.id))
        self.refresh_conversations()
        await self._start_reply()

    async def _start_reply(self) -> None:
        assert self.conversation_id is not None
        conv_id = self.conversation_id
        try:
            turns = [(m.role, m.content) for m in self.store.messages(conv_id)
                     if m.role in ("user", "assistant") and not (m.role == "assistant" and m.status == ERROR)]
            message = self.store.add_message(conv_id, "assistant", "", status=STREAMING)
            self.store.update_conversation(conv_id, model=self.backend.model_name, preset=self.options.preset,
                                           samples=self.options.samples)
        except HistoryError as exc:
            await self._history_failed(exc)
            return
        view = AssistantMessage(model=self.backend.model_name, message_id=message.id)
        chat = self.query_one(ChatView)
        await chat.mount(view)
        chat.anchor()
        chat.scroll_end(animate=False)
        reply = ReplySession(self.store, conv_id, message.id, view, on_end=self._reply_ended)
        reply.budget = self.options.effective()["thinking_budget"]
        self.reply = reply
        self._update_status()
        self._worker = self.run_worker(self._generate(reply, turns), group="reply", exclusive=True,
                                       exit_on_error=False)

    async def _generate(self, reply: ReplySession, turns: list[tuple[str, str]]) -> None:
        try:
            if not self._backend_ready.is_set():
                reply.state = "loading model…"
                await self._backend_ready.wait()
            if self._backend_error:
                await reply.finish(ERROR, error=self._backend_error)
                return
            try:
                request = build_request(self.options, turns, ctx_per_slot=self.backend.context_size,
                                        max_tokens=self.max_tokens, slots=self.backend.slots)
                reply.budget = request.reasoning.thinking_budget  # what the engine will enforce
                reply.use_samples(request.n)
                stream = await self.backend.submit(request)
            except VibeEdgeError as exc:
                await reply.finish(ERROR, error=exc.message)
                return
            await reply.consume(stream)
        except asyncio.CancelledError:
            reply.stop()
            raise
        except HistoryError as exc:
            await self._history_failed(exc)
        except Exception as exc:
            try:
                await reply.finish(ERROR, error=f"{type(exc).__name__}: {exc}")
            except HistoryError as failure:
                await self._history_failed(failure)

    def _reply_ended(self, reply: ReplySession, stopped: bool) -> None:
        self._update_status()
        if stopped:
            return
        self.refresh_conversations()
        if reply.error and reply.status == ERROR:
            self.notify(reply.error, title="The reply failed", severity="error", timeout=10)

    # -- actions --------------------------------------------------------------------------------
    def action_stop(self) -> None:
        reply = self.reply
        if reply is not None and not reply.done:
            reply.stop()
            if self._worker is not None:
                self._worker.cancel()
            self.notify("Stopped. The partial reply is kept.", timeout=3)
            return
        if self._editing_message_id is not None:
            self._cancel_edit()
            self.query_one(PromptInput).clear()
            return
        self.query_one(PromptInput).focus()

    def action_help(self) -> None:
        rows = [(_pretty(k), d) for k, d in INPUT_KEYS[:2]]
        rows += [(_pretty(self._keys[a]), d) for a, _k, _short, d, _s in KEYS]
        rows += [(_pretty(k), d) for k, d in INPUT_KEYS[2:]]
        notes = ["Keys can be changed in tui.toml, section [keys], e.g. new_chat = \"ctrl+n\" "
                 "(names: " + ", ".join(a for a, *_ in KEYS) + ").",
                 "Themes: Ctrl+P → \"Change theme\", or the settings screen."]
        self.push_screen(HelpScreen(rows, notes))

    async def action_new_chat(self) -> None:
        if self._busy("start a new chat"):
            return
        self.conversation_id = None
        self.reply = None
        self._cancel_edit()
        self.sub_title = ""
        self._show_empty()
        self.refresh_conversations()
        self._update_status()
        self.query_one(PromptInput).focus()

    async def action_regenerate(self) -> None:
        if self._busy("regenerate") or self.conversation_id is None:
            return
        messages = self.store.messages(self.conversation_id)
        if not messages or messages[-1].role != "assistant":
            if messages and messages[-1].role == "user":
                await self._start_reply()  # the last prompt never got a reply: answer it now
            return
        self.store.delete_messages_from(self.conversation_id, messages[-1].id)
        for view in self.query(AssistantMessage):
            if view.message_id == messages[-1].id:
                await view.remove()
        await self._start_reply()

    def action_edit_last(self) -> None:
        if self._busy("edit") or self.conversation_id is None:
            return
        users = [m for m in self.store.messages(self.conversation_id) if m.role == "user"]
        if not users:
            return
        last = users[-1]
        prompt = self.query_one(PromptInput)
        prompt.text = last.content
        prompt.move_cursor(prompt.document.end)
        prompt.focus()
        self._editing_message_id = last.id
        editing = self.query_one("#editing", Static)
        editing.update(Text(f"Editing the last prompt: Enter resends it (replacing the reply), "
                            f"{_pretty(self._keys['stop'])} cancels."))
        editing.add_class("-on")

    def _cancel_edit(self) -> None:
        self._editing_message_id = None
        try:
            self.query_one("#editing", Static).remove_class("-on")
        except Exception:
            pass

    def action_toggle_thinking(self) -> None:
        views = [v for v in self.query(AssistantMessage) if v.thinking is not None]
        if views:
            block = views[-1].thinking
            assert block is not None
            block.collapsed = not block.collapsed
            if not block.collapsed:
                self.query_one(ChatView).scroll_to_widget(block, animate=False)

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(ConversationList)
        if sidebar.has_class("-visible") and sidebar.has_focus:
            sidebar.remove_class("-visible")
            self.query_one(PromptInput).focus()
        else:
            sidebar.add_class("-visible")
            sidebar.focus()

    def action_search(self) -> None:
        def opened(conversation_id: int | None) -> None:
            if conversation_id is not None:
                self.run_worker(self.open_conversation(conversation_id))

        self.push_screen(SearchScreen(self.store.list_conversations), opened)

    def action_rename(self) -> None:
        if self.conversation_id is None:
            self.notify("Nothing to rename yet: send a prompt first.")
            return
        conv = self.store.get_conversation(self.conversation_id)
        assert conv is not None

        def renamed(title: str | None) -> None:
            if title and title.strip() and self.conversation_id == conv.id:
                self.store.rename_conversation(conv.id, title.strip())
                self.sub_title = title.strip()
                self.refresh_conversations()

        self.push_screen(TextPromptScreen("Rename conversation", conv.title), renamed)

    def action_delete(self) -> None:
        if self.conversation_id is None or self._busy("delete"):
            return
        conv = self.store.get_conversation(self.conversation_id)
        assert conv is not None

        async def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            self.store.delete_conversation(conv.id)
            self.conversation_id = None
            remaining = self.store.list_conversations()
            if remaining:
                await self.open_conversation(remaining[0].id)
            else:
                await self.action_new_chat()
            self.refresh_conversations()
            self.notify(f"Deleted “{conv.title}”.")

        self.push_screen(ConfirmScreen(f"Delete “{conv.title}” and all its messages?"), confirmed)

    def action_export(self) -> None:
        if self.conversation_id is None:
            self.notify("Nothing to export yet.")
            return
        try:
            md, js = export_conversation(self.store, self.conversation_id, self.export_dir)
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error")
            return
        self.notify(f"Exported to {md} and {js.name}", title="Export", timeout=8)
        self.last_export = (md, js)

    def _last_answer(self) -> str | None:
        views = list(self.query(AssistantMessage))
        for view in reversed(views):
            if view.answer_text:
                return view.answer_text
        return None

    def action_copy_answer(self) -> None:
        text = self._last_answer()
        if not text:
            self.notify("No answer to copy yet.")
            return
        self.copy_to_clipboard(text)
        self.notify(f"Copied the last answer ({len(text):,} characters).", timeout=3)

    def action_copy_code(self) -> None:
        blocks = code_blocks(self._last_answer() or "")
        if not blocks:
            self.notify("The last answer has no code block.")
            return
        if len(blocks) == 1:
            self._copy_code(blocks[0][1])
            return
        items = [(str(i), f"{i + 1}. {lang or 'code'}: " + (code.strip().splitlines() or [""])[0])
                 for i, (lang, code) in enumerate(blocks)]

        def picked(choice: str | None) -> None:
            if choice is not None:
                self._copy_code(blocks[int(choice)][1])

        self.push_screen(PickerScreen("Copy which code block?", items), picked)

    def _copy_code(self, code: str) -> None:
        self.copy_to_clipboard(code)
        self.notify(f"Copied a code block ({len(code.splitlines())} lines).", timeout=3)

    def action_settings(self) -> None:
        themes = sorted(self.available_themes)

        def saved(result: tuple[ChatOptions, str | None] | None) -> None:
            if result is None:
                return
            options, theme = result
            self.options = options
            self.store.set_pref("options", options.to_dict())
            if self.conversation_id is not None:  # the open conversation remembers its preset
                self.store.update_conversation(self.conversation_id, preset=options.preset,
                                               samples=options.samples)
            if theme and theme != self.theme:
                self.theme = theme
            self._update_status()
            self.notify("Settings saved.", timeout=3)

        self.push_screen(SettingsScreen(self.options, themes, self.theme, slots=self.backend.slots),
                         saved)

    def watch_theme(self, theme: str) -> None:
        try:
            self.store.set_pref("theme", theme)
        except Exception:
            pass

    def action_scroll_up(self) -> None:
        self.query_one(ChatView).scroll_page_up(animate=False)

    def action_scroll_down(self) -> None:
        self.query_one(ChatView).scroll_page_down(animate=False)

    async def action_quit(self) -> None:
        if self.reply is not None and not self.reply.done:
            try:
                self.action_stop()
            except HistoryError as exc:
                await self._history_failed(exc)
        self.exit(return_code=1 if self.history_error is not None else 0)

    async def on_unmount(self) -> None:
        if self.reply is not None and not self.reply.done:
            try:
                self.reply.stop()
            except HistoryError as exc:
                self.history_error = self.history_error or exc
        try:
            await self.backend.aclose()
        finally:
            if self._owns_store:
                self.store.close()


def _title(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "Untitled")
    return first if len(first) <= 60 else first[:59] + "…"
