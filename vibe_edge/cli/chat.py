"""`vibe-edge chat`: the Textual chat, with the engine in-process or a server (--url/--socket)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vibe_edge.cli.common import (
    CtxOpt,
    GpuLayersOpt,
    KvTypeOpt,
    ModelOpt,
    ThreadsOpt,
    cli_errors,
    settings_from_flags,
)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)


def chat(
    model: ModelOpt = None,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", "-p", help="math, code or general: system prompt, sampling, limits.")] = None,
    url: Annotated[Optional[str], typer.Option(
        help="Talk to a running OpenAI-compatible server (vibe-edge serve, llama-server, Ollama) "
             "at this base URL instead of loading the model here.")] = None,
    socket: Annotated[Optional[Path], typer.Option(
        help="Talk to a `vibe-edge serve` listening on this Unix socket.")] = None,
    api_key: Annotated[Optional[str], typer.Option(
        envvar="VIBE_EDGE_API_KEY", help="API key for --url/--socket (if the server wants one). "
                                          "OPENAI_API_KEY is never sent.")] = None,
    history: Annotated[Optional[Path], typer.Option(
        help="Chat history database (SQLite). Default: $VIBE_EDGE_HISTORY or chat.sqlite3 "
             "in the user data directory.")] = None,
    export_dir: Annotated[Path, typer.Option(
        help="Where Ctrl+S writes Markdown and JSON exports.")] = Path("."),
    system: Annotated[Optional[str], typer.Option(help="System prompt (replaces the preset's).")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (preset's if unset).")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Nucleus sampling threshold.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Most tokens per reply, thinking included.")] = None,
    thinking_budget: Annotated[Optional[int], typer.Option(
        help="Thinking tokens before the engine closes the think block (0: no thinking, -1: no budget).")] = None,
    theme: Annotated[Optional[str], typer.Option(help="Textual theme, e.g. nord, gruvbox, textual-light.")] = None,
    tui_config: Annotated[Optional[Path], typer.Option(
        help="Key bindings and theme file (TOML). Default: $VIBE_EDGE_TUI_CONFIG or tui.toml "
             "in the user config directory.")] = None,
    sidebar: Annotated[Optional[bool], typer.Option(
        "--sidebar/--no-sidebar", help="Show the conversation list at start (default: wide terminals).")] = None,
    slots: Annotated[Optional[int], typer.Option(
        "--slots", min=1, help="Sequences the engine decodes at once: the most samples a reply may "
                               "draw (the samples option, a majority vote). Each slot has its own "
                               "--ctx of KV cache. Default: the saved samples option (1).")] = None,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
) -> None:
    """Chat with VibeThinker in the terminal: live reasoning, Esc to stop, history kept."""
    with cli_errors():
        from vibe_edge.presets import get_preset
        from vibe_edge.errors import SettingsError
        from vibe_edge.tui.config import load_tui_config
        from vibe_edge.tui.store import HistoryStore, default_history_path

        if url and socket:
            raise SettingsError("give --url or --socket, not both")
        settings = settings_from_flags(ctx=ctx, threads=threads, gpu_layers=gpu_layers,
                                       kv_type=kv_type, preset=preset)
        get_preset(settings.preset)
        tui = load_tui_config(tui_config, explicit=tui_config is not None)
        store = HistoryStore(history or default_history_path())  # a bad file stops here, untouched
        try:
            options = _options(store, settings, preset, system, temperature, top_p, max_tokens,
                               thinking_budget)
            # Enough slots for the saved samples option unless --slots says otherwise.
            backend = _backend(settings, model, url, socket, api_key, slots=slots or options.samples)
            from vibe_edge.tui.app import ChatApp

            app = ChatApp(backend, history=store, options=options, export_dir=export_dir,
                          keymap=tui.keymap, sidebar=sidebar if sidebar is not None else tui.sidebar,
                          theme=theme or tui.theme, pin_preset=preset is not None,
                          max_tokens=settings.max_tokens)
            app.run()
        finally:
            store.close()
        if app.history_error is not None:
            from vibe_edge.cli.common import err_console

            err_console.print(f"[bold red]error:[/] {app.history_error.message}")
            if app.history_error.hint:
                err_console.print(f"  [yellow]hint:[/] {app.history_error.hint}")
            if app.unsaved_text:
                err_console.print("your last message was not saved; here it is:")
                err_console.print(app.unsaved_text, markup=False, highlight=False)
        if app.return_code:  # a failure inside the app is a failure of the command
            raise typer.Exit(app.return_code)


def _options(store, settings, preset, system, temperature, top_p, max_tokens, thinking_budget):
    from vibe_edge.tui.options import ChatOptions

    saved = store.get_pref("options")
    options = ChatOptions.from_dict(saved) if saved else ChatOptions(preset=settings.preset)
    changes = {k: v for k, v in (("system_prompt", system), ("temperature", temperature),
                                 ("top_p", top_p), ("max_tokens", max_tokens),
                                 ("thinking_budget", thinking_budget)) if v is not None}
    if preset is not None:
        changes["preset"] = settings.preset
    elif not saved:
        changes["preset"] = settings.preset
        if settings.thinking_budget is not None and "thinking_budget" not in changes:
            changes["thinking_budget"] = settings.thinking_budget
    changes.setdefault("loop_guard", settings.loop_guard)
    import dataclasses

    options = dataclasses.replace(options, **changes)
    options.validate()
    return options


def _backend(settings, model, url, socket, api_key, *, slots: int = 1):
    if url or socket:
        from vibe_edge.tui.backends import OpenAIBackend

        # Only vibe-edge's own key (flag or VIBE_EDGE_API_KEY): a user's OPENAI_API_KEY is for
        # OpenAI, and sending it to whatever server --url names would leak it.
        return OpenAIBackend(base_url=url, socket=socket, model=model, api_key=api_key)
    from vibe_edge.runtime import open_engine, prepare_model
    from vibe_edge.tui.backends import LocalBackend

    # One slot unless samples are wanted: then the whole context goes to the one conversation.
    prepare_model(settings, model=model, slots=slots)  # a missing model is a CLI error, before the TUI
    notes: list[str] = []

    def factory():
        return open_engine(settings, model=model, notify=notes.append, slots=slots)

    return LocalBackend(factory, notices=notes)
