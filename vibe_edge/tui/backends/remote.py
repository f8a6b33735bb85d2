"""A remote OpenAI-compatible server as a chat backend: a running `vibe-edge serve`,
llama-server, Ollama, over TCP (a base URL) or a Unix socket, through the `openai` client.

The stream is read with the server's own wire models (vibe_edge.server.openai.protocol): every
chunk is validated into a ChatCompletionChunk, so vibe-edge's extensions (reasoning_content,
notice, timings, finish_detail, boxed, reasoning_end, error) are read as the server writes them,
and another server's extras stay readable as pydantic extras. A ChunkReader turns chunks into
the engine's own events, so the app cannot tell a remote reply from a local one.

Samples (`n` > 1, vibe-edge's `vote`): the server streams each sample as the choice of its
index, ends each choice with its own final chunk (finish reason, timings) and sends the vote
in a chunk of its own; a ChoicesReader keeps a ChunkReader per choice and gives back the
engine's events for samples (each tagged with its sample, a SampleFinished per choice, one
Finished with every sample's result and the VoteOutcome, its own fields the winner's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vibe_edge.defaults import UNLIMITED_THINKING
from vibe_edge.deploy.routing import SESSION_HEADER, conversation_key, new_session_id
from vibe_edge.server.openai.protocol import (
    ChatCompletionChunk,
    ModelCard,
    NoticeItem,
    Timings,
    Usage,
    VoteInfo,
)
from vibe_edge.text.boxed import extract_boxed
from vibe_edge.text.language import cjk_advisory
from vibe_edge.text.reasoning import ReasoningParser
from vibe_edge.tui.backends.base import Backend, BackendError, ChatStream
from vibe_edge.types import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Notice,
    ReasoningEnd,
    RequestStats,
    SampleFinished,
    Started,
    TextDelta,
    VoteGroup,
    VoteOutcome,
)

__all__ = ["ChoicesReader", "ChunkReader", "OpenAIBackend", "RemoteStream"]

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
        # vibe-edge (meta.ctx_per_slot) and others (context_length) give the context in the
        # model card; use it if there.
        for m in models.data:
            if m.id == self.model_name:
                card = m.model_dump()
                if self.context_size is None:
                    self.context_size = _card_context(card)
                self.slots = _card_slots(card)

    async def submit(self, request: GenerationRequest) -> ChatStream:
        request.validate()
        if self._client is None:
            raise BackendError("not connected yet")
        return RemoteStream(request, open_stream=lambda: self._open_stream(request),
                            where=self.where, on_usage=self._record_usage)

    async def _open_stream(self, request: GenerationRequest) -> tuple[Any, str | None]:
        """The SDK's chunk stream for one request, and a notice for the user when vibe-edge's
        extra fields had to be dropped. Only a server that refuses the extra fields themselves
        (top_k, thinking_budget...) is asked again without them, and from then on; any other
        400 (a too-long context, a bad value) is this request's error."""
        import openai

        try:
            return await self._client.chat.completions.create(**self._params(request)), None
        except openai.BadRequestError as exc:
            if not self._send_extras or not _rejects_extras(exc):
                raise
            self._send_extras = False
            stream = await self._client.chat.completions.create(**self._params(request))
            return stream, (f"The server at {self.where} does not take vibe-edge's extra fields "
                            f"({_api_message(exc)}): this chat goes on without the thinking "
                            "budget, the loop guard, top_k and min_p.")

    def _record_usage(self, tokens: int) -> None:
        self._last_used = tokens

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
        if request.n > 1:
            params["n"] = request.n
        if self._send_extras:
            extra: dict[str, Any] = {"top_k": s.top_k, "min_p": s.min_p,
                                     "loop_guard": request.reasoning.loop_guard}
            # The request's None is the user's "no budget": say so, or the server would apply
            # its own default budget instead.
            budget = request.reasoning.thinking_budget
            extra["thinking_budget"] = UNLIMITED_THINKING if budget is None else budget
            if request.vote:
                extra["vote"] = True
            params["extra_body"] = extra
        return params


class RemoteStream:
    """One remote reply as an EventStream. `open_stream` starts the request (the backend's),
    `on_usage` hears how many tokens the conversation now uses."""

    def __init__(self, request: GenerationRequest, *,
                 open_stream: Callable[[], Awaitable[tuple[Any, str | None]]],
                 where: str, on_usage: Callable[[int], None]):
        self.request = request
        self._open_stream = open_stream
        self._where = where
        self._on_usage = on_usage
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

        request = self.request
        rid = request.request_id or f"remote-{next(_remote_ids)}"
        advisory = cjk_advisory(_last_user(request))
        reader: ChunkReader | ChoicesReader = (
            ChoicesReader(rid, request.n, advisory=advisory) if request.n > 1
            else ChunkReader(rid, advisory=advisory))
        for sample in range(request.n):
            yield Started(rid, slot=-1, prompt_tokens=0, cached_tokens=0, sample=sample)
        finish: FinishReason | None = None
        error: str | None = None
        try:
            self._stream, dropped = await self._open_stream()
            if dropped:
                yield Notice(rid, "extras_dropped", dropped)
            if self._cancelled.is_set():
                await self._stream.close()
            async for sdk_chunk in self._stream:
                if self._cancelled.is_set():
                    break
                try:
                    chunk = ChatCompletionChunk.model_validate(sdk_chunk.model_dump())
                except ValidationError as exc:
                    finish, error = FinishReason.ERROR, f"the server at {self._where} sent a chunk " \
                                                        f"that is not an OpenAI chunk: {exc}"
                    break
                for event in reader.feed(chunk):
                    yield event
            for event in reader.flush():
                yield event
        except openai.APIConnectionError as exc:
            if not self._cancelled.is_set():
                finish, error = FinishReason.ERROR, f"connection to {self._where} failed: {_cause(exc)}"
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
        if isinstance(reader, ChoicesReader):
            for event in reader.unfinished(finish=finish, error=error):
                yield event
        result = reader.result(finish=finish, error=error)
        if result.stats.prompt_tokens:
            self._on_usage(result.stats.prompt_tokens + result.stats.completion_tokens)
        yield Finished(rid, result)


class ChunkReader:
    """Chunks of one streamed chat completion -> the engine's events, and at the end the
    GenerationResult. Inline `<think>` tags in content (servers that do not split reasoning)
    are split here; a CJK advisory is given here when the server gave none."""

    def __init__(self, request_id: str, *, advisory: str | None = None,
                 clock: Callable[[], float] = time.monotonic, sample: int = 0):
        self.id = request_id
        self.sample = sample  # the choice this reader reads (its events carry it)
        self.advisory = advisory
        self.clock = clock
        self.started = clock()
        self.first: float | None = None
        self.parser = ReasoningParser()
        self.reasoning: list[str] = []
        self.answer: list[str] = []
        self.n_deltas = 0
        self.finish = FinishReason.STOP
        self.usage: Usage | None = None
        self.timings: Timings | None = None
        self.boxed: str | None = None
        self.end: ReasoningEnd | None = None
        self.error: str | None = None
        self._advised = False

    def feed(self, chunk: ChatCompletionChunk) -> list[Event]:
        events: list[Event] = []
        if chunk.timings is not None:
            self.timings = chunk.timings
        for item in [*(chunk.notices or ()), *([chunk.notice] if chunk.notice else [])]:
            events.extend(self._notice(item))
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            texts: list[TextDelta] = []
            if choice.delta.thinking:
                texts.append(TextDelta(self.id, "reasoning", choice.delta.thinking, self.sample))
            if choice.delta.content:
                texts.extend(TextDelta(self.id, channel, text, self.sample)
                             for channel, text in self.parser.feed(choice.delta.content))
            if texts and self.advisory and not self._advised:
                # The server did not advise (not vibe-edge): do it here, once.
                self._advised = True
                events.append(Notice(self.id, "cjk_prompt", self.advisory, self.sample))
            for delta in texts:
                events.append(self._text(delta))
            if choice.finish_reason:
                self.finish = _finish(choice.finish_detail or choice.finish_reason)
            self.boxed = choice.boxed if choice.boxed is not None else self.boxed
            self.error = choice.error or self.error
            if choice.reasoning_end is not None:
                with contextlib.suppress(ValueError):
                    self.end = ReasoningEnd(choice.reasoning_end)
        return events

    def flush(self) -> list[Event]:
        """Text the parser still holds (a tag cut at the very end)."""
        return [self._text(TextDelta(self.id, channel, text, self.sample))
                for channel, text in self.parser.flush()]

    def _text(self, delta: TextDelta) -> TextDelta:
        self.first = self.first or self.clock()
        self.n_deltas += 1
        (self.answer if delta.channel == "answer" else self.reasoning).append(delta.text)
        return delta

    def _notice(self, item: NoticeItem) -> list[Event]:
        if not item.code:
            return []
        self._advised = self._advised or item.code == "cjk_prompt"
        self.end = _end_from_notice(item.code) or self.end
        return [Notice(self.id, item.code, item.message, self.sample)]

    def result(self, *, finish: FinishReason | None = None, error: str | None = None) -> GenerationResult:
        """The reply's result; `finish`/`error` when the stream itself failed or was cancelled."""
        now = self.clock()
        reasoning_text, answer_text = "".join(self.reasoning), "".join(self.answer)
        usage = self.usage or Usage()
        timings = self.timings or Timings()
        extra = timings.model_extra or {}  # llama-server's own timings
        prompt_tokens = int(usage.prompt_tokens or extra.get("prompt_n") or 0)
        completion = int(usage.completion_tokens or extra.get("predicted_n") or self.n_deltas)
        details = usage.completion_tokens_details
        reasoning_tokens = int(details.reasoning_tokens or 0) if details else 0
        cached = int((usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0)
                     or extra.get("cache_n") or 0)
        decode_tps = timings.decode_tps or extra.get("predicted_per_second")
        if timings.reasoning_tokens is not None:
            reasoning_tokens = reasoning_tokens or timings.reasoning_tokens
        ttft = timings.ttft_ms if timings.ttft_ms is not None else (
            None if self.first is None else (self.first - self.started) * 1000)
        if decode_tps is None and self.first is not None and now - self.first > 0 and completion > 1:
            decode_tps = (completion - 1) / (now - self.first)
        if reasoning_text and not reasoning_tokens:
            # The server did not split the count: share it out by characters (an estimate).
            reasoning_tokens = round(completion * len(reasoning_text)
                                     / max(1, len(reasoning_text) + len(answer_text)))
        stats = RequestStats(
            ttft_ms=ttft, total_ms=(now - self.started) * 1000, prompt_tokens=prompt_tokens,
            cached_tokens=cached, reasoning_tokens=reasoning_tokens,
            answer_tokens=max(0, completion - reasoning_tokens), decode_tps=decode_tps,
            draft_tokens=timings.draft_tokens or 0, accepted_tokens=timings.accepted_tokens or 0)
        end = self.end
        if end is None and reasoning_text and answer_text:
            end = ReasoningEnd.MODEL
        text = (f"<think>\n{reasoning_text}\n</think>\n\n" if reasoning_text else "") + answer_text
        return GenerationResult(
            request_id=self.id, text=text, reasoning=reasoning_text, answer=answer_text,
            finish_reason=finish or self.finish, stats=stats, reasoning_end=end,
            boxed=self.boxed or extract_boxed(answer_text), error=error or self.error,
            sample=self.sample)


class ChoicesReader:
    """The chunks of a streamed request for n samples -> the engine's events for samples.

    Each choice index is a sample, read by its own ChunkReader (its own think-tag parser and
    counts). A chunk-level notice belongs to the choice the chunk names; a chunk's timings to
    the choice it finishes. The vote chunk (no choices) and the usage chunk (the request's
    total) come after the last choice."""

    def __init__(self, request_id: str, n: int, *, advisory: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.id = request_id
        self.n = n
        # The advisory is the request's, not each sample's: sample 0 gives it when needed.
        self.readers = [ChunkReader(request_id, advisory=advisory if i == 0 else None, clock=clock,
                                    sample=i) for i in range(n)]
        self.ended = [False] * n
        self.vote: VoteInfo | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: ChatCompletionChunk) -> list[Event]:
        if chunk.vote is not None:
            self.vote = chunk.vote
        if chunk.usage is not None:
            self.usage = chunk.usage
        events: list[Event] = []
        for choice in chunk.choices:
            if not 0 <= choice.index < self.n:
                continue  # a server that sent more choices than asked: not a sample of ours
            reader = self.readers[choice.index]
            part = chunk.model_copy(update={"choices": [choice], "usage": None, "vote": None})
            if chunk.timings is not None and choice.finish_reason:
                # A sample's own figures come in its final chunk; read them as its usage too.
                t = chunk.timings
                reader.usage = Usage(prompt_tokens=t.prompt_tokens or 0,
                                     completion_tokens=t.completion_tokens or 0)
            events.extend(reader.feed(part))
            if choice.finish_reason and not self.ended[choice.index]:
                events.extend(reader.flush())
                self.ended[choice.index] = True
                events.append(SampleFinished(self.id, reader.result(), sample=choice.index))
        if not chunk.choices and (chunk.notice or chunk.notices):
            events.extend(self.readers[0].feed(chunk))
        return events

    def flush(self) -> list[Event]:
        return []  # each choice's parser is flushed when it ends (or in unfinished())

    def unfinished(self, *, finish: FinishReason | None, error: str | None) -> list[Event]:
        """The ends of the choices the stream never finished (it was cancelled or failed)."""
        events: list[Event] = []
        for i, reader in enumerate(self.readers):
            if not self.ended[i]:
                events.extend(reader.flush())
                self.ended[i] = True
                reader.finish = finish or FinishReason.ERROR
                reader.error = error or reader.error or (
                    "the stream ended before this sample did" if finish is None else None)
                events.append(SampleFinished(self.id, reader.result(), sample=i))
        return events

    def result(self, *, finish: FinishReason | None = None, error: str | None = None) -> GenerationResult:
        """The request's result: every sample's, the vote, and the winner's fields on top (sample
        0's without a vote), as the engine gives it."""
        self.unfinished(finish=finish, error=error)  # none left after the stream's own end
        samples = [reader.result() for reader in self.readers]
        if self.usage is not None and self.usage.prompt_tokens:
            for s in samples:
                s.stats.prompt_tokens = s.stats.prompt_tokens or self.usage.prompt_tokens
        vote = _vote_outcome(self.vote, samples) if self.vote is not None else None
        chosen = samples[0]
        if vote is not None and vote.winner is not None:
            chosen = samples[vote.winner.samples[0]]
        top = dataclasses.replace(chosen, samples=samples, vote=vote)
        if finish is FinishReason.CANCELLED or (finish is FinishReason.ERROR and vote is None):
            top = dataclasses.replace(top, finish_reason=finish, error=error or top.error)
        return top


def _vote_outcome(info: VoteInfo, samples: list[GenerationResult]) -> VoteOutcome:
    """The streamed vote (its choice indices are the samples: streamed choices keep their
    sample's index) as the engine's VoteOutcome."""
    n = len(samples)
    groups = [VoteGroup(a.answer, [c for c in a.choices if 0 <= c < n], a.mean_reasoning_tokens)
              for a in info.answers]
    answers = list(info.choice_answers[:n]) + [None] * (n - len(info.choice_answers[:n]))
    return VoteOutcome([g for g in groups if g.samples], answers,
                       [c for c in info.early_stopped if 0 <= c < n])


def _card_slots(card: dict[str, Any]) -> int | None:
    """The slots a vibe-edge server's model card gives (meta.slots), or None."""
    with contextlib.suppress(ValidationError):
        parsed = ModelCard.model_validate(card)
        if parsed.meta is not None and parsed.meta.slots > 0:
            return parsed.meta.slots
    return None


def _card_context(card: dict[str, Any]) -> int | None:
    """The context a server's model card gives (vibe-edge: meta.ctx_per_slot; others:
    context_length or meta.n_ctx), or None."""
    with contextlib.suppress(ValidationError):
        parsed = ModelCard.model_validate(card)
        extra = parsed.model_extra or {}
        meta_extra = (parsed.meta.model_extra or {}) if parsed.meta else {}
        for ctx in (parsed.meta.ctx_per_slot if parsed.meta else None, extra.get("context_length"),
                    meta_extra.get("n_ctx")):
            if isinstance(ctx, int) and ctx > 0:
                return ctx
    return None


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

