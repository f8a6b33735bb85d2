"""The FastAPI app: OpenAI-compatible routes over a ModelHost.

    POST /v1/chat/completions   chat, streaming (SSE) or not, reasoning in reasoning_content
    POST /v1/completions        raw prompt text, streaming or not
    GET  /v1/models             the one model served
    GET  /health                503 while loading or stopping, 200 when ready (no key needed)
    GET  /metrics               Prometheus text format

The app only translates: the engine does batching, caching, cancellation and deadlines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from vibe_edge import __version__ as _version
from vibe_edge.engine import Finished, FinishReason, GenerationResult, Notice, RequestHandle, TextDelta
from vibe_edge.errors import EngineClosed, VibeEdgeError
from vibe_edge.server import translate
from vibe_edge.server.config import ServerConfig
from vibe_edge.server.errors import error_body, install_error_handlers, vibe_error_body, vibe_error_response
from vibe_edge.server.host import ModelHost
from vibe_edge.server.instance import InstanceHeaderMiddleware
from vibe_edge.server.metrics import CONTENT_TYPE, Metrics
from vibe_edge.server.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from vibe_edge.server.schemas import ChatCompletionRequest, CompletionRequest

log = logging.getLogger("vibe_edge.server")

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
_ENDPOINTS = {CHAT_PATH: "chat", COMPLETIONS_PATH: "completions"}
SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b": keep-alive\n\n"


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class SSEResponse(StreamingResponse):
    """A StreamingResponse that always runs `on_close` - even when the client left before the
    body started (then the body generator never runs, so its own `finally` cannot)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def create_app(config: ServerConfig | None = None, host: ModelHost | None = None) -> FastAPI:
    config = config or ServerConfig()
    host = host or ModelHost()
    metrics = Metrics(host.status, lambda: host.ready)

    app = FastAPI(title="vibe-edge", version=_version,
                  description="OpenAI-compatible API for VibeThinker-1.5B on llama.cpp")
    app.state.host = host
    app.state.config = config
    app.state.metrics = metrics
    def on_reject(path: str, status: int) -> None:
        if path in _ENDPOINTS:
            metrics.rejected(_ENDPOINTS[path], status)

    install_error_handlers(app, retry_after_s=config.retry_after_s, on_error=on_reject)

    # add_middleware wraps: the last added is the outermost.
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes, on_reject=on_reject)
    if config.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=config.api_keys, on_reject=on_reject)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])
    if config.instance:  # outermost: every response names its instance, refusals included
        app.add_middleware(InstanceHeaderMiddleware, name=config.instance)

    # -- plain routes ---------------------------------------------------------------------------
    @app.head("/health", include_in_schema=False)
    @app.get("/health", tags=["server"])
    async def health() -> Response:
        if host.ready:
            status = host.status()
            body: dict[str, Any] = {"status": "ok", "model": host.model_id}
            if status is not None:
                body.update(slots=status.n_slots, busy_slots=status.busy_slots, queued=status.queued)
            return JSONResponse(body)
        try:
            host.require_engine()
            reason = EngineClosed("the server is not ready")
        except EngineClosed as exc:
            reason = exc
        return JSONResponse({"status": host.state, **vibe_error_body(reason)}, status_code=503,
                            headers={"Retry-After": str(config.retry_after_s)})

    @app.get("/metrics", tags=["server"])
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    def model_card() -> dict[str, Any]:
        engine = host.require_engine()
        info = engine.info
        return {
            "id": host.model_id, "object": "model", "created": host.created, "owned_by": "vibe-edge",
            "meta": {"name": info.name, "architecture": info.architecture, "n_params": info.n_params,
                     "size_bytes": info.size_bytes, "n_ctx_train": info.n_ctx_train,
                     "slots": info.n_slots, "ctx_per_slot": info.ctx_per_slot,
                     "thinks": info.thinks, "gpu_layers": info.gpu_layers},
        }

    @app.get("/v1/models", tags=["openai"])
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}", tags=["openai"])
    async def get_model(model_id: str) -> Response:
        card = model_card()
        if model_id != card["id"]:
            return JSONResponse(error_body(f"the model {model_id!r} does not exist; this server "
                                           f"serves {card['id']!r}", type="invalid_request_error",
                                           code="model_not_found", param="model"), status_code=404)
        return JSONResponse(card)

    # -- generation -----------------------------------------------------------------------------
    async def start(endpoint: str, body: ChatCompletionRequest | CompletionRequest
                    ) -> tuple[translate.Prepared, RequestHandle]:
        engine = host.require_engine()
        prepare = translate.prepare_chat if endpoint == "chat" else translate.prepare_completion

        submitted: list[RequestHandle] = []

        def submit() -> tuple[translate.Prepared, RequestHandle]:
            # Template rendering, tokenizing and grammar building can take a while on a long
            # prompt: off the event loop.
            prepared = prepare(body, config, ctx_per_slot=engine.config.ctx_per_slot)
            handle = engine.submit(prepared.request)
            submitted.append(handle)
            return prepared, handle

        try:
            return await to_thread.run_sync(submit)
        except BaseException:
            # Cancelled (the client left) while the thread was submitting: nobody will read
            # this request, so it must not keep a slot.
            for handle in submitted:
                handle.cancel()
            raise

    def outcome(result: GenerationResult) -> str:
        return result.finish_reason.value

    def engine_failure(result: GenerationResult) -> VibeEdgeError | None:
        """The error to report instead of a response when a request produced nothing."""
        if result.stats.completion_tokens > 0 or result.text:
            return None
        if result.finish_reason is FinishReason.ERROR:
            exc = VibeEdgeError(f"the engine failed this request: {result.error or 'unknown error'}")
            exc.code = "engine_error"
            return exc
        if result.finish_reason is FinishReason.CANCELLED:
            return EngineClosed("the server is shutting down; the request was cancelled",
                                hint="retry against a running server")
        return None

    async def collect(request: Request, handle: RequestHandle
                      ) -> tuple[GenerationResult | None, list[Notice]]:
        notices: list[Notice] = []

        async def consume() -> GenerationResult:
            async for event in handle:
                if isinstance(event, Notice):
                    notices.append(event)
                elif isinstance(event, Finished):
                    return event.result
            raise RuntimeError("the event stream ended without Finished")

        consumer = asyncio.ensure_future(consume())
        watcher = asyncio.ensure_future(_wait_for_disconnect(request))
        try:
            done, _ = await asyncio.wait({consumer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not consumer.done():
                handle.cancel()
                consumer.cancel()
        if consumer in done:
            return consumer.result(), notices
        return None, notices  # the client went away

    async def generate(request: Request, endpoint: str,
                       body: ChatCompletionRequest | CompletionRequest) -> Response:
        prepared, handle = await start(endpoint, body)
        model = host.model_id
        if prepared.stream:
            return SSEResponse(stream(endpoint, prepared, handle, model),
                               on_close=lambda: handle.done or handle.cancel())
        metrics.in_flight.inc()
        try:
            result, notices = await collect(request, handle)
        finally:
            metrics.in_flight.dec()
        if result is None:
            metrics.finished(endpoint, "disconnected", None)
            return Response(status_code=204)  # nobody reads it
        metrics.finished(endpoint, outcome(result), result.stats)
        failure = engine_failure(result)
        if failure is not None:  # counted above already: answer without the error handler
            return vibe_error_response(failure, retry_after_s=config.retry_after_s)
        created = int(time.time())
        if endpoint == "chat":
            payload = translate.chat_completion(result, model=model, created=created, notices=notices)
        else:
            payload = translate.text_completion(result, model=model, created=created, notices=notices,
                                                echo_prompt=prepared.echo_prompt)
        return JSONResponse(payload)

    async def stream(endpoint: str, prepared: translate.Prepared, handle: RequestHandle,
                     model: str) -> AsyncIterator[bytes]:
        maker = translate.ChunkMaker(prepared.request.request_id, model, chat=endpoint == "chat")
        events = handle.__aiter__()
        pending: asyncio.Future | None = None
        finished = False
        produced = False
        metrics.in_flight.inc()
        try:
            if endpoint == "chat":
                yield sse(maker.role())
            elif prepared.echo_prompt:
                yield sse(maker.text("answer", prepared.echo_prompt))
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=config.keepalive_s)
                if not done:
                    yield SSE_KEEPALIVE  # a long prefill or queue wait: keep proxies patient
                    continue
                try:
                    event = pending.result()
                except StopAsyncIteration:
                    break
                finally:
                    pending = None
                if isinstance(event, TextDelta):
                    if event.text:
                        produced = True
                        yield sse(maker.text(event.channel, event.text))
                elif isinstance(event, Notice):
                    yield sse(maker.notice(event))
                elif isinstance(event, Finished):
                    finished = True
                    result = event.result
                    metrics.finished(endpoint, outcome(result), result.stats)
                    failure = None if produced else engine_failure(result)
                    if failure is not None:
                        yield sse(vibe_error_body(failure))
                    else:
                        yield sse(maker.final(result))
                        if prepared.include_usage:
                            yield sse(maker.usage(result))
                    yield SSE_DONE
                    return
        finally:
            metrics.in_flight.dec()
            if pending is not None:
                pending.cancel()
            if not finished:
                handle.cancel()
                metrics.finished(endpoint, "disconnected", None)

    @app.post(CHAT_PATH, tags=["openai"])
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        return await generate(request, "chat", body)

    @app.post(COMPLETIONS_PATH, tags=["openai"])
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return await generate(request, "completions", body)

    return app
