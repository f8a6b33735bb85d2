"""Where replies come from. The app talks to one small interface, so one widget tree serves all:

- LocalBackend: the engine in this process (vibe_edge.engine's public API only).
- OpenAIBackend: a running `vibe-edge serve`, llama-server, Ollama or any OpenAI-compatible
  server, over TCP (base URL) or a Unix socket, through the `openai` client.
- ScriptedBackend: a scripted stream (tests, demos): reasoning, answer, notices, pauses.

Every backend turns a GenerationRequest into a ChatStream that yields the engine's own events,
`Started -> (TextDelta | Notice)* -> Finished`, Finished exactly once, and that `cancel()` stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vibe_edge.chat.boxed import extract_boxed
from vibe_edge.chat.language import cjk_advisory
from vibe_edge.chat.presets import UNLIMITED_THINKING
from vibe_edge.chat.reasoning import ReasoningParser
from vibe_edge.deploy.routing import SESSION_HEADER, conversation_key, new_session_id
from vibe_edge.engine.types import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Notice,
    ReasoningEnd,
    RequestStats,
    Started,
    TextDelta,
)
from vibe_edge.errors import VibeEdgeError

__all__ = [
    "Backend",
    "BackendError",
    "ChatStream",
    "LocalBackend",
    "OpenAIBackend",
    "ScriptedBackend",
    "Step",
]


class BackendError(VibeEdgeError):
    """The backend cannot serve: model failed to load, server unreachable."""

    status, type, code = 503, "server_error", "backend_unavailable"


class ChatStream(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    def cancel(self) -> None: ...


class Backend(ABC):
    """One source of replies. `start()` once (may take seconds: loading a model), then
    `submit()` per reply, then `aclose()`."""

    kind: str = "?"
    model_name: str = "?"
    context_size: int | None = None  # tokens a conversation may use (prompt + reply); None unknown
    thinks: bool | None = None       # the model writes <think> blocks (None: unknown)
    notices: list[str] = []          # things to tell the user once started (class default: none)

    async def start(self) -> None:
        return None

    @abstractmethod
    async def submit(self, request: GenerationRequest) -> ChatStream:
        """Begin a reply. Raises a VibeEdgeError for a request that cannot start at all."""

    def context_used(self) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


# -- local engine ---------------------------------------------------------------------------------

class LocalBackend(Backend):
    """The engine in this process. `factory` builds it (in a thread: loading takes a while)."""

    kind = "local"

    def __init__(self, factory: Callable[[], Any] | None = None, *, engine: Any = None,
                 notices: list[str] | None = None):
        if factory is None and engine is None:
            raise ValueError("give a factory or an engine")
        self.notices = notices if notices is not None else []
        self._factory = factory
        self.engine = engine
        self._owns = engine is None
        if engine is not None:
            self._adopt(engine)

    def _adopt(self, engine: Any) -> None:
        info = engine.info
        self.model_name = info.name
        self.context_size = info.ctx_per_slot
        self.thinks = info.thinks

    async def start(self) -> None:
        if self.engine is None:
            assert self._factory is not None
            self.engine = await asyncio.to_thread(self._factory)
            self._adopt(self.engine)

    async def submit(self, request: GenerationRequest) -> ChatStream:
        if self.engine is None:
            raise BackendError("the model is still loading", hint="wait for the status line to say ready")
        return self.engine.submit(request)  # a RequestHandle: async-iterable, cancel()

    async def aclose(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None and self._owns:
            await asyncio.to_thread(engine.close)


# -- scripted -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One step of a scripted reply.

    kind: "reasoning" / "answer" (text, cut into `chunk`-character deltas), "notice" (code,
    text), "pause" (seconds), "wait" (until `gate` is set), "end" (the think block closed by
    the engine: text is "budget" or "loop").
    """

    kind: str
    text: str = ""
    code: str = ""
    seconds: float = 0.0
    gate: asyncio.Event | None = None


def reasoning(text: str) -> Step:
    return Step("reasoning", text)


def answer(text: str) -> Step:
    return Step("answer", text)


def notice(code: str, text: str) -> Step:
    return Step("notice", text, code=code)


def pause(seconds: float) -> Step:
    return Step("pause", seconds=seconds)


def wait(gate: asyncio.Event) -> Step:
    return Step("wait", gate=gate)


class ScriptedBackend(Backend):
    """Replays scripts: one per submit (the last one repeats). For tests of the widgets."""

    kind = "scripted"

    def __init__(self, scripts: Sequence[Sequence[Step]] | None = None, *, chunk: int = 8,
                 delay: float = 0.0, model_name: str = "scripted", context_size: int = 4096,
                 fixed_stats: bool = False):
        self.scripts = [list(s) for s in (scripts or [[answer("Hello from the scripted backend.")]])]
        self.chunk = chunk
        self.delay = delay
        self.model_name = model_name
        self.context_size = context_size
        self.thinks = True
        self.fixed_stats = fixed_stats  # report ttft 120 ms, 42 tok/s (stable snapshots)
        self.requests: list[GenerationRequest] = []
        self.streams: list[_ScriptedStream] = []

    async def submit(self, request: GenerationRequest) -> ChatStream:
        request.validate()
        index = min(len(self.requests), len(self.scripts) - 1)
        self.requests.append(request)
        stream = _ScriptedStream(request, self.scripts[index], self.chunk, self.delay, self.fixed_stats)
        self.streams.append(stream)
        return stream


class _ScriptedStream:
    def __init__(self, request: GenerationRequest, steps: list[Step], chunk: int, delay: float,
                 fixed_stats: bool = False):
        self.fixed_stats = fixed_stats
        self.request = request
        self.steps = steps
        self.chunk = max(1, chunk)
        self.delay = delay
        self._cancel = asyncio.Event()
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self._cancel.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._cancel.wait(), seconds)

    async def __aiter__(self) -> AsyncIterator[Event]:  # type: ignore[override]
        rid = self.request.request_id
        t0 = time.monotonic()
        yield Started(rid, slot=0, prompt_tokens=10, cached_tokens=0)
        parts = {"reasoning": [], "answer": []}
        counts = {"reasoning": 0, "answer": 0}
        first: float | None = None
        end: ReasoningEnd | None = None
        finish = FinishReason.STOP
        for step in self.steps:
            if self._cancel.is_set():
                break
            if step.kind in ("reasoning", "answer"):
                for i in range(0, len(step.text), self.chunk):
                    if self._cancel.is_set():
                        break
                    if self.delay:
                        await self._sleep(self.delay)
                        if self._cancel.is_set():
                            break
                    else:
                        await asyncio.sleep(0)
                    piece = step.text[i:i + self.chunk]
                    parts[step.kind].append(piece)
                    counts[step.kind] += 1
                    first = first or time.monotonic()
                    yield TextDelta(rid, step.kind, piece)  # type: ignore[arg-type]
                if step.kind == "answer" and parts["reasoning"] and end is None:
                    end = ReasoningEnd.MODEL
            elif step.kind == "notice":
                yield Notice(rid, step.code, step.text)
                if step.code == "thinking_budget":
                    end = ReasoningEnd.BUDGET
                elif step.code == "loop_guard":
                    end = ReasoningEnd.LOOP
            elif step.kind == "pause":
                await self._sleep(step.seconds)
            elif step.kind == "wait" and step.gate is not None:
                waiter = asyncio.ensure_future(step.gate.wait())
                canceller = asyncio.ensure_future(self._cancel.wait())
                await asyncio.wait({waiter, canceller}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                canceller.cancel()
            elif step.kind == "length":
                finish = FinishReason.LENGTH
        if self._cancel.is_set():
            finish = FinishReason.CANCELLED
        total = (time.monotonic() - t0) * 1000
        reasoning_text, answer_text = "".join(parts["reasoning"]), "".join(parts["answer"])
        stats = RequestStats(
            ttft_ms=120.0 if self.fixed_stats else (None if first is None else (first - t0) * 1000),
            total_ms=1000.0 if self.fixed_stats else total, prompt_tokens=10, reasoning_tokens=counts["reasoning"], answer_tokens=counts["answer"],
            decode_tps=42.0)
        text = (f"<think>\n{reasoning_text}\n</think>\n\n" if reasoning_text else "") + answer_text
        yield Finished(rid, GenerationResult(
            request_id=rid, text=text, reasoning=reasoning_text, answer=answer_text,
            finish_reason=finish, stats=stats, reasoning_end=end, boxed=extract_boxed(answer_text)))


# -- remote (OpenAI-compatible) -------------------------------------------------------------------

_remote_ids = itertools.count(1)


class OpenAIBackend(Backend):
    """An OpenAI-compatible server: `base_url` (http://host:port or .../v1) or `socket` (a Unix
    socket path). `model` None asks the server's /v1/models and takes the first."""

    kind = "remote"

    def __init__(self, *, base_url: str | None = None, socket: str | Path | None = None,
                 model: str | None = None, api_key: str | None = None, timeout: float = 3600.0,
                 context_size: int | None = None, http_client: Any = None):
        if (base_url is None) == (socket is None):
            raise ValueError("give exactly one of base_url or socket")
        self.base_url = _v1_url(base_url) if base_url else "http://localhost/v1"
        self.socket = str(socket) if socket is not None else None
        self.requested_model = model
        self.model_name = model or "?"
        self.api_key = api_key or "not-needed"
        self.timeout = timeout
        self.context_size = context_size
        self._client: Any = None
        self._http_client = http_client  # an httpx.AsyncClient to use instead (tests)
        self._send_extras = True
        self._last_used: int | None = None
        # Behind a balancer (docs/DEPLOY.md) every turn of a conversation carries the same
        # X-Session-Id, so it lands on the instance that holds its history in the cache.
        self._session_salt = new_session_id()

    @property
    def where(self) -> str:
        return f"unix:{self.socket}" if self.socket else self.base_url

    async def start(self) -> None:
        import httpx
        import openai

        http_client = self._http_client
        if http_client is None:
            transport = httpx.AsyncHTTPTransport(uds=self.socket) if self.socket else None
            http_client = httpx.AsyncClient(transport=transport,
                                            timeout=httpx.Timeout(self.timeout, connect=10.0))
        self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key,
                                          http_client=http_client, max_retries=0)
        try:
            models = await self._client.models.list()
            ids = [m.id for m in models.data]
        except openai.APIConnectionError as exc:
            raise BackendError(f"cannot reach the server at {self.where}: {_cause(exc)}",
                               hint="start it with `vibe-edge serve`, or check --url / --socket") from exc
        except openai.APIStatusError as exc:
            if self.requested_model is None:
                raise BackendError(f"the server at {self.where} answered {exc.status_code} to "
                                   f"/v1/models: {_api_message(exc)}",
                                   hint="name the model with --model, or check --api-key") from exc
            ids = []
        if self.requested_model is None:
            if not ids:
                raise BackendError(f"the server at {self.where} lists no models",
                                   hint="name one with --model")
            self.model_name = ids[0]
        # vibe-edge and llama-server describe their context in the model card; use it if there.
        if self.context_size is None:
            with contextlib.suppress(Exception):
                for m in models.data:
                    if m.id == self.model_name:
                        extra = m.model_extra or {}
                        meta = extra.get("meta") or {}
                        ctx = extra.get("context_length") or extra.get("ctx_per_slot") or meta.get("n_ctx")
                        if isinstance(ctx, int) and ctx > 0:
                            self.context_size = ctx

    async def submit(self, request: GenerationRequest) -> ChatStream:
        request.validate()
        if self._client is None:
            raise BackendError("not connected yet")
        return _RemoteStream(self, request)

    def context_used(self) -> int | None:
        return self._last_used

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        s = request.sampling
        params: dict[str, Any] = {
            "model": self.model_name,
            "messages": [dict(m) for m in (request.messages or [])],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": s.temperature,
            "top_p": s.top_p,
            "extra_headers": {SESSION_HEADER: conversation_key(request.messages or (), self._session_salt)},
        }
        if request.max_tokens:
            params["max_tokens"] = request.max_tokens
        if s.seed is not None:
            params["seed"] = s.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if self._send_extras:
            extra: dict[str, Any] = {"top_k": s.top_k, "min_p": s.min_p,
                                     "loop_guard": request.reasoning.loop_guard}
            # The request's None is the user's "no budget": say so, or the server would apply
            # its own default budget instead.
            budget = request.reasoning.thinking_budget
            extra["thinking_budget"] = UNLIMITED_THINKING if budget is None else budget
            params["extra_body"] = extra
        return params


class _RemoteStream:
    def __init__(self, backend: OpenAIBackend, request: GenerationRequest):
        self.backend = backend
        self.request = request
        self._cancelled = asyncio.Event()
        self._stream: Any = None

    def cancel(self) -> None:
        self._cancelled.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().create_task(stream.close())

    async def __aiter__(self) -> AsyncIterator[Event]:  # type: ignore[override]
        import openai

        backend, request = self.backend, self.request
        rid = request.request_id or f"remote-{next(_remote_ids)}"
        t0 = time.monotonic()
        yield Started(rid, slot=-1, prompt_tokens=0, cached_tokens=0)
        advisory = cjk_advisory(_last_user(request))
        sent_cjk = False
        reasoning_parts: list[str] = []
        answer_parts: list[str] = []
        parser = ReasoningParser()
        first: float | None = None
        finish = FinishReason.STOP
        error: str | None = None
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}
        boxed: str | None = None
        end: ReasoningEnd | None = None
        n_deltas = 0

        try:
            try:
                self._stream = await backend._client.chat.completions.create(**backend._params(request))
            except openai.BadRequestError as exc:
                # Only a server that refuses the extra fields themselves gets them switched off;
                # any other 400 (a too-long context, a bad value) is this request's error.
                if not backend._send_extras or not _rejects_extras(exc):
                    raise
                backend._send_extras = False
                self._stream = await backend._client.chat.completions.create(**backend._params(request))
                yield Notice(rid, "extras_dropped",
                             f"The server at {backend.where} does not take vibe-edge's extra fields "
                             f"({_api_message(exc)}): this chat goes on without the thinking "
                             "budget, the loop guard, top_k and min_p.")
            if self._cancelled.is_set():
                await self._stream.close()
            async for chunk in self._stream:
                if self._cancelled.is_set():
                    break
                extra = chunk.model_extra or {}
                if isinstance(extra.get("timings"), dict):
                    timings = extra["timings"]
                if isinstance(extra.get("boxed"), str):
                    boxed = extra["boxed"]
                items = list(extra.get("notices") or ())
                if isinstance(extra.get("notice"), dict):  # vibe-edge streams one per chunk
                    items.append(extra["notice"])
                for item in items:
                    if isinstance(item, dict) and item.get("code"):
                        code = str(item["code"])
                        sent_cjk = sent_cjk or code == "cjk_prompt"
                        end = _end_from_notice(code) or end
                        yield Notice(rid, code, str(item.get("message", "")))
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
                for choice in chunk.choices:
                    delta = choice.delta
                    dextra = (delta.model_extra or {}) if delta is not None else {}
                    think = dextra.get("reasoning_content") or dextra.get("reasoning")
                    content = delta.content if delta is not None else None
                    out: list[TextDelta] = []
                    if think:
                        out.append(TextDelta(rid, "reasoning", think))
                    if content:
                        for channel, text in parser.feed(content):
                            out.append(TextDelta(rid, channel, text))
                    if out and advisory and not sent_cjk:
                        # The server did not advise (not vibe-edge): do it here, once.
                        sent_cjk = True
                        yield Notice(rid, "cjk_prompt", advisory)
                    for ev in out:
                        first = first or time.monotonic()
                        n_deltas += 1
                        (answer_parts if ev.channel == "answer" else reasoning_parts).append(ev.text)
                        yield ev
                    cextra = choice.model_extra or {}
                    if choice.finish_reason:
                        finish = _finish(cextra.get("finish_detail") or choice.finish_reason)
                    if isinstance(cextra.get("boxed"), str):
                        boxed = cextra["boxed"]
                    if isinstance(cextra.get("error"), str) and cextra["error"]:
                        error = cextra["error"]
                    if isinstance(cextra.get("reasoning_end"), str):
                        with contextlib.suppress(ValueError):
                            end = ReasoningEnd(cextra["reasoning_end"])
            for channel, text in parser.flush():
                if channel == "answer":
                    answer_parts.append(text)
                else:
                    reasoning_parts.append(text)
                yield TextDelta(rid, channel, text)
        except openai.APIConnectionError as exc:
            if not self._cancelled.is_set():
                finish, error = FinishReason.ERROR, f"connection to {backend.where} failed: {_cause(exc)}"
        except openai.APIStatusError as exc:
            finish, error = FinishReason.ERROR, f"the server answered {exc.status_code}: {_api_message(exc)}"
        except (openai.OpenAIError, OSError) as exc:
            if not self._cancelled.is_set():
                finish, error = FinishReason.ERROR, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # httpx errors while a cancelled stream closes under us
            if not self._cancelled.is_set():
                finish, error = FinishReason.ERROR, f"{type(exc).__name__}: {exc}"
        finally:
            if self._stream is not None:
                with contextlib.suppress(Exception):
                    await self._stream.close()
        if self._cancelled.is_set():
            finish = FinishReason.CANCELLED
        now = time.monotonic()
        reasoning_text, answer_text = "".join(reasoning_parts), "".join(answer_parts)
        prompt_tokens = int(usage.get("prompt_tokens") or timings.get("prompt_n") or 0)
        completion = int(usage.get("completion_tokens") or timings.get("predicted_n") or n_deltas)
        details = usage.get("completion_tokens_details") or {}
        reasoning_tokens = int(details.get("reasoning_tokens") or 0) if details else 0
        cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or
                     timings.get("cache_n") or 0)
        # vibe-edge sends its RequestStats; llama-server its own timings.
        decode_tps = timings.get("decode_tps") or timings.get("predicted_per_second")
        if isinstance(timings.get("reasoning_tokens"), int):
            reasoning_tokens = reasoning_tokens or timings["reasoning_tokens"]
        server_ttft = timings.get("ttft_ms")
        ttft = server_ttft if isinstance(server_ttft, (int, float)) else (
            None if first is None else (first - t0) * 1000)
        if decode_tps is None and first is not None and now - first > 0 and completion > 1:
            decode_tps = (completion - 1) / (now - first)
        if reasoning_text and not reasoning_tokens:
            # The server did not split the count: share it out by characters (an estimate).
            reasoning_tokens = round(completion * len(reasoning_text)
                                     / max(1, len(reasoning_text) + len(answer_text)))
        stats = RequestStats(
            ttft_ms=ttft, total_ms=(now - t0) * 1000, prompt_tokens=prompt_tokens, cached_tokens=cached, reasoning_tokens=reasoning_tokens,
            answer_tokens=max(0, completion - reasoning_tokens), decode_tps=decode_tps)
        if prompt_tokens:
            backend._last_used = prompt_tokens + completion
        if end is None and reasoning_text and answer_text:
            end = ReasoningEnd.MODEL
        text = (f"<think>\n{reasoning_text}\n</think>\n\n" if reasoning_text else "") + answer_text
        yield Finished(rid, GenerationResult(
            request_id=rid, text=text, reasoning=reasoning_text, answer=answer_text,
            finish_reason=finish, stats=stats, reasoning_end=end,
            boxed=boxed or extract_boxed(answer_text), error=error))


def _end_from_notice(code: str) -> ReasoningEnd | None:
    return {"thinking_budget": ReasoningEnd.BUDGET, "loop_guard": ReasoningEnd.LOOP}.get(code)


def _finish(reason: str) -> FinishReason:
    try:
        return FinishReason(reason)
    except ValueError:
        return FinishReason.LENGTH if reason in ("max_tokens",) else FinishReason.STOP


def _last_user(request: GenerationRequest) -> str:
    for m in reversed(list(request.messages or [])):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


def _v1_url(url: str) -> str:
    url = url.rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url if url.endswith("/v1") else url + "/v1"


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return str(inner or exc) or type(inner or exc).__name__


# What vibe-edge adds to the OpenAI request (OpenAIBackend._params' extra_body).
_EXTRA_FIELDS = ("top_k", "min_p", "loop_guard", "thinking_budget")
# How strict servers word "that field does not exist": OpenAI ("Unrecognized request argument
# supplied: top_k"), pydantic with extra="forbid" as in vLLM ("Extra inputs are not permitted"),
# JSON-schema validators ("Additional properties are not allowed").
_UNKNOWN_FIELD_WORDS = ("unrecognized", "unknown", "extra inputs", "extra_forbidden",
                        "additional properties", "not permitted", "unexpected keyword")


def _rejects_extras(exc: Any) -> bool:
    """Did this 400 refuse one of vibe-edge's extra fields (rather than the request itself)?"""
    body = getattr(exc, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else None
    param = err.get("param") if isinstance(err, dict) else None
    if isinstance(param, str) and param.split(".")[-1] in _EXTRA_FIELDS:
        return True
    message = _api_message(exc).lower()
    names_field = any(name in message for name in _EXTRA_FIELDS)
    return names_field and any(word in message for word in _UNKNOWN_FIELD_WORDS)


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return getattr(exc, "message", None) or str(exc)

