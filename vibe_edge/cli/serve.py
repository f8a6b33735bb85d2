"""`vibe-edge serve`: the OpenAI-compatible server on loopback TCP or a Unix socket.

The model is resolved and planned before anything listens (a wrong --model fails at once),
then the socket is bound, then the model loads in the background: /health answers 503 until
it is ready. SIGTERM or Ctrl-C stops gracefully (exit 0); a second Ctrl-C forces it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from vibe_edge.cli.common import (
    CtxOpt,
    GpuLayersOpt,
    KvTypeOpt,
    ModelOpt,
    SlotsOpt,
    SpecOpt,
    ThreadsOpt,
    cli_errors,
    notify,
    settings_from_flags,
)
from vibe_edge.server.config import ServerConfig, read_api_keys


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    model: ModelOpt = None,
    host: Annotated[Optional[str], typer.Option(
        help="Address to listen on. Anything but loopback requires an API key. Default: 127.0.0.1.")] = None,
    port: Annotated[Optional[int], typer.Option(help="TCP port; 0 picks a free one and prints it. Default: 8080.")] = None,
    socket_path: Annotated[Optional[Path], typer.Option(
        "--socket", help="Listen on this Unix socket (created 0600) instead of TCP.")] = None,
    api_key: Annotated[Optional[list[str]], typer.Option(
        "--api-key", envvar="VIBE_EDGE_API_KEY",
        help="Require this bearer key (repeatable). Prefer --api-key-file: flags show in `ps`.")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option(
        help="Read bearer keys from this file, one per line.")] = None,
    slots: SlotsOpt = None,
    ctx: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuLayersOpt = None,
    kv_type: KvTypeOpt = None,
    queue_size: Annotated[Optional[int], typer.Option(
        help="Requests that may wait for a slot before new ones get 429.")] = None,
    timeout: Annotated[Optional[float], typer.Option(
        "--timeout", help="Longest time a request may run, in seconds.")] = None,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", "-p", help="math, code or general: default sampling and limits for requests "
                               "(when given, also its system prompt).")] = None,
    thinking_budget: Annotated[Optional[int], typer.Option(
        help="Default thinking budget in tokens; 0: no thinking, -1: no budget (requests may override).")] = None,
    loop_guard: Annotated[Optional[bool], typer.Option(
        "--loop-guard/--no-loop-guard", help="End thinking that repeats itself.")] = None,
    alias: Annotated[Optional[str], typer.Option(
        help="Model id shown in /v1/models and responses. Default: the model name.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(
        help="The most tokens any request may generate, whatever it asks. Default: what a slot holds.")] = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option(
        help="Allow browser requests from this origin (repeatable). CORS is off by default.")] = None,
    allowed_host: Annotated[Optional[list[str]], typer.Option(
        help="Also answer to this Host name without an API key (repeatable); by default only "
             "loopback names (127.0.0.1, localhost, ::1), against DNS rebinding.")] = None,
    max_body: Annotated[Optional[int], typer.Option(help="Largest request body in bytes. Default: 8 MiB.")] = None,
    grace: Annotated[Optional[float], typer.Option(
        help="On SIGTERM, let running requests finish this many seconds, then cancel them. Default: 10.")] = None,
    keepalive: Annotated[Optional[float], typer.Option(
        help="Send an SSE keep-alive comment after this many seconds without output. Default: 5.")] = None,
    instance: Annotated[Optional[str], typer.Option(
        help="Name of this instance in the X-Vibe-Edge-Instance header of every response (behind "
             "a balancer: where a conversation lives). Default: the address it listens on.")] = None,
    log_level: Annotated[Optional[str], typer.Option(help="debug, info, warning or error.")] = None,
    spec: SpecOpt = None,
) -> None:
    """Serve the model over an OpenAI-compatible HTTP API (chat, completions, models, metrics)."""
    from vibe_edge.engine import Engine
    from vibe_edge.runtime import engine_config, prepare_model
    from vibe_edge.server.runner import check_exposure, run_server

    with cli_errors():
        settings = settings_from_flags(slots=slots, ctx=ctx, threads=threads, gpu_layers=gpu_layers,
                                       kv_type=kv_type, queue_size=queue_size,
                                       request_timeout_s=timeout, preset=preset,
                                       thinking_budget=thinking_budget, loop_guard=loop_guard,
                                       max_tokens=max_tokens, host=host, port=port,
                                       log_level=log_level, cors_origins=cors_origin or None,
                                       max_body_bytes=max_body, grace_s=grace, keepalive_s=keepalive,
                                       instance=instance, allowed_hosts=allowed_host or None,
                                       spec=spec)
        keys = read_api_keys(api_key or (), str(api_key_file) if api_key_file else None)
        config = ServerConfig.from_settings(settings, api_keys=keys, model_id=alias)
        if socket_path is None:
            check_exposure(settings.host, keys)  # before the slow part
        logging.basicConfig(level=settings.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        prepared = prepare_model(settings, model=model)  # resolve + plan: fails before listening
        if prepared.resolved.notice:
            notify(prepared.resolved.notice)
        for warning in prepared.plan.warnings:
            notify(warning)
        engine_cfg = engine_config(prepared, settings)
        if config.model_id is None:
            config = dataclasses.replace(config, model_id=prepared.resolved.name)

        code = run_server(config, lambda: Engine(engine_cfg), host=settings.host, port=settings.port,
                          socket_path=socket_path, notify=_say,
                          log_level=settings.log_level)
    raise typer.Exit(code)



def _say(message: str) -> None:
    print(message, flush=True)
