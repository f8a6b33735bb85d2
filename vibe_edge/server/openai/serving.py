"""What every generation endpoint shares: a body becomes a request through the one request
policy, the request is submitted off the event loop, and the answer goes back whole or as a
stream of server-sent events, with keep-alives, cancellation when the client leaves, metrics
and OpenAI-style errors.

A new surface (another API) is a new serving object and a router beside the OpenAI one; it
reuses `submit`, `collect` and `stream_events`.

`n` samples: one engine request whose samples are the choices. Whole, the choices are in sample
order, except that with `vote` the winner is moved first (choices[0] is what a plain client
reads); streamed, each chunk's choice index is its sample (the winner is not known yet), each
choice gets its own final chunk when its sample ends, and the vote comes in a chunk of its own
(no choices) after the last.

Finish reasons: OpenAI clients know "stop" and "length"; a request cut short for a timeout, a
cancellation or an engine error reads "length", and `finish_detail` says which (an engine
error also sets `error` on the choice). A request that fails before producing any output gets
an HTTP error instead, or, once a stream has started, an SSE error event.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import aclosing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from anyio import to_thread
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from vibe_edge.errors import EngineClosed, InvalidRequest, VibeEdgeError
from vibe_edge.requests import Limits, Overrides, build_request
from vibe_edge.server.config import ServerConfig
from vibe_edge.server.errors import vibe_error_body, vibe_error_response
from vibe_edge.server.host import ModelHost
from vibe_edge.server.metrics import Metrics
from vibe_edge.server.openai.protocol import ChatCompletionRequest, CompletionRequest, ResponseFormat
from vibe_edge.server.sse import KEEPALIVE, SSE_DONE, SSE_KEEPALIVE, SSEResponse, sse, with_keepalive
from vibe_edge.types import (
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Notice,
    RequestStream,
    SampleFinished,
    StructuredOutput,
    TextDelta,
)

GenerationBody = ChatCompletionRequest | CompletionRequest


@dataclass
class Prepared:
    """A request built from a body, with what the response needs to echo back."""

    request: GenerationRequest
    stream: bool
    include_usage: bool
    echo_prompt: str | None = None


class ChunkWriter(Protocol):
    """The streamed objects of one request, for one endpoint's format."""

    def opening(self) -> list[BaseModel]: ...

    def text(self, channel: str, text: str, index: int = 0) -> BaseModel: ...

    def notice(self, notice: Notice) -> BaseModel: ...

    def final(self, result: GenerationResult, index: int = 0) -> BaseModel: ...

    def usage(self, result: GenerationResult) -> BaseModel: ...

    def vote(self, result: GenerationResult) -> BaseModel: ...


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class OpenAIServing:
    """The shared half of a generation endpoint; subclasses say how their body becomes a
    request (`prepare`) and how results are written (`response`, `chunks`)."""

    endpoint = "?"  # the metrics label

    def __init__(self, host: ModelHost, config: ServerConfig, metrics: Metrics):
        self.host = host
        self.config = config
        self.metrics = metrics

    # -- per endpoint ---------------------------------------------------------------------------
    def prepare(self, body: Any, *, ctx_per_slot: int) -> Prepared:
        raise NotImplementedError

    def response(self, result: GenerationResult, prepared: Prepared, notices: list[Notice], *,
                 model: str) -> BaseModel:
        raise NotImplementedError

    def chunks(self, prepared: Prepared, model: str) -> ChunkWriter:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def build(self, body: GenerationBody, *, ctx_per_slot: int, messages: list[dict[str, Any]] | None,
              prompt: str | None, max_tokens: int | None, request_id: str) -> GenerationRequest:
        """The body's fields as overrides of its preset (or the server's), through the one request
        policy; the server's flags are the defaults, its timeout caps deadlines."""
        named = body.preset is not None
        overrides = Overrides(
            temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, min_p=body.min_p,
            repeat_penalty=body.repeat_penalty, presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty, seed=body.seed,
            logit_bias=_logit_bias(body.logit_bias),
            structured_output=_structured_output(body.response_format),
            stop=body.stop, max_tokens=max_tokens, thinking_budget=body.thinking_budget,
            loop_guard=body.loop_guard, deadline_s=body.deadline_s, speculative=body.speculative)
        config = self.config
        request = build_request(
            body.preset if named else config.default_preset, messages=messages, prompt=prompt,
            overrides=overrides,
            defaults=Overrides(thinking_budget=config.thinking_budget, loop_guard=config.loop_guard),
            limits=Limits(ctx_per_slot=ctx_per_slot, max_tokens=config.max_tokens,
                          max_deadline_s=config.request_timeout_s),
            apply_prompts=named or config.apply_preset_prompts, request_id=request_id)
        request.n = 1 if body.n is None else body.n
        request.vote = bool(body.vote)
        return request

    async def create(self, body: Any, raw: Request) -> Response:
        """Answer one request: JSON, or an SSE stream when the body asks for one."""
        prepared, handle = await self.submit(body)
        model = self.host.model_id
        if prepared.stream:
            return SSEResponse(self.stream_events(prepared, handle, self.chunks(prepared, model)),
                               on_close=lambda: handle.done or handle.cancel())
        self.metrics.in_flight.inc()
        try:
            result, notices = await self.collect(raw, handle)
        finally:
            self.metrics.in_flight.dec()
        if result is None:
            self.metrics.finished(self.endpoint, "disconnected", None)
            return Response(status_code=204)  # nobody reads it
        self.metrics.finished(self.endpoint, result.finish_reason.value, result.stats)
        failure = engine_failure(result)
        if failure is not None:  # counted above already: answer without the error handler
            return vibe_error_response(failure, retry_after_s=self.config.retry_after_s)
        return JSONResponse(self.response(result, prepared, notices, model=model).model_dump())

    async def submit(self, body: Any) -> tuple[Prepared, RequestStream]:
        engine = self.host.require_engine()
        submitted: list[RequestStream] = []

        def submit() -> tuple[Prepared, RequestStream]:
            # Template rendering, tokenizing and grammar building can take a while on a long
            # prompt: off the event loop.
            prepared = self.prepare(body, ctx_per_slot=engine.info.ctx_per_slot)
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

    async def collect(self, raw: Request, handle: RequestStream
                      ) -> tuple[GenerationResult | None, list[Notice]]:
        """The request's result and notices; (None, ...) when the client went away first (the
        request is then cancelled)."""
        notices: list[Notice] = []

        async def consume() -> GenerationResult:
            async for event in handle:
                if isinstance(event, Notice):
                    notices.append(event)
                elif isinstance(event, Finished):
                    return event.result
            raise RuntimeError("the event stream ended without Finished")

        consumer = asyncio.ensure_future(consume())
        watcher = asyncio.ensure_future(_wait_for_disconnect(raw))
        try:
            done, _ = await asyncio.wait({consumer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not consumer.done():
                handle.cancel()
                consumer.cancel()
        if consumer in done:
            return consumer.result(), notices
        return None, notices

    async def stream_events(self, prepared: Prepared, handle: RequestStream,
                            writer: ChunkWriter) -> AsyncIterator[bytes]:
        """The SSE body: the writer's chunks for each event, keep-alive comments while nothing
        comes, [DONE] at the end; a client that leaves cancels the request."""
        finished = produced = False
        self.metrics.in_flight.inc()
        try:
            for chunk in writer.opening():
                yield sse(chunk.model_dump())
            async with aclosing(with_keepalive(handle, self.config.keepalive_s)) as events:
                async for event in events:
                    if event is KEEPALIVE:
                        yield SSE_KEEPALIVE  # a long prefill or queue wait: keep proxies patient
                    elif isinstance(event, TextDelta):
                        if event.text:
                            produced = True
                            yield sse(writer.text(event.channel, event.text, event.sample).model_dump())
                    elif isinstance(event, Notice):
                        yield sse(writer.notice(event).model_dump())
                    elif isinstance(event, SampleFinished):
                        yield sse(writer.final(event.result, event.sample).model_dump())
                    elif isinstance(event, Finished):
                        finished = True
                        yield self._finished(event.result, produced, prepared, writer)
                        yield SSE_DONE
                        return
        finally:
            self.metrics.in_flight.dec()
            if not finished:
                handle.cancel()
                self.metrics.finished(self.endpoint, "disconnected", None)

    def _finished(self, result: GenerationResult, produced: bool, prepared: Prepared,
                  writer: ChunkWriter) -> bytes:
        self.metrics.finished(self.endpoint, result.finish_reason.value, result.stats)
        failure = None if produced else engine_failure(result)
        if failure is not None:
            return sse(vibe_error_body(failure))
        if result.samples:  # each choice had its final chunk when its sample ended
            frames = sse(writer.vote(result).model_dump()) if result.vote is not None else b""
        else:
            frames = sse(writer.final(result).model_dump())
        if prepared.include_usage:
            frames += sse(writer.usage(result).model_dump())
        return frames


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


def refuse_unsupported(body: GenerationBody) -> None:
    """Fields that would change the answer but are not supported: a 400, never ignored."""
    if (body.model_extra or {}).get("grammar") is not None:
        # llama-server and llama-cpp-python take raw GBNF here; this server does not (a grammar
        # is code for llama.cpp's parser), and ignoring it would silently change the answer.
        raise InvalidRequest("a raw grammar is not accepted; ask for JSON with response_format "
                             '{"type": "json_schema", "json_schema": {"schema": {...}}}',
                             param="grammar")
    if body.logprobs not in (None, False, 0):
        raise InvalidRequest("logprobs are not supported by this server", param="logprobs")
    if isinstance(body, ChatCompletionRequest):
        if body.top_logprobs not in (None, 0):
            raise InvalidRequest("top_logprobs is not supported by this server", param="top_logprobs")
        if body.tools or body.functions:
            raise InvalidRequest("tool and function calling are not supported by this model",
                                 param="tools" if body.tools else "functions")
    else:
        if body.best_of not in (None, 1):
            raise InvalidRequest("best_of > 1 is not supported", param="best_of")
        if body.suffix:
            raise InvalidRequest("suffix (fill-in-the-middle) is not supported", param="suffix")


MAX_TOKEN_ID_DIGITS = 10  # 2**31 - 1 has ten digits


def _logit_bias(bias: dict[str, float] | None) -> dict[int, float]:
    """OpenAI's logit_bias has token ids as JSON object keys, i.e. strings."""
    out: dict[int, float] = {}
    for key, value in (bias or {}).items():
        text = key.strip()
        # Token ids are below 2**31; a longer digit string is refused before int() (which
        # rejects 4,300+ digits with a ValueError, and is slow on long ones anyway).
        if not (text.isascii() and text.isdigit()) or len(text) > MAX_TOKEN_ID_DIGITS:
            shown = key if len(key) <= 40 else key[:40] + "..."
            raise InvalidRequest(f"logit_bias keys must be token ids (integers >= 0), got {shown!r}",
                                 param="logit_bias")
        token = int(text)
        if not -100.0 <= value <= 100.0:
            raise InvalidRequest(f"logit_bias values must be in [-100, 100], got {value!r}",
                                 param="logit_bias")
        out[token] = float(value)
    return out


def _structured_output(fmt: ResponseFormat | None) -> StructuredOutput | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return StructuredOutput()
    schema = fmt.json_schema.schema_ if fmt.json_schema is not None else None
    if schema is None:
        raise InvalidRequest("response_format json_schema needs json_schema.schema (a JSON Schema "
                             "object)", param="response_format")
    return StructuredOutput(schema=schema)


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
