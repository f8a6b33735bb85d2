"""Server-sent events: the frames, a response that always runs its cleanup, and keep-alives.

A reasoning model can be silent for a long time (a long prompt prefilling, a full queue), and
proxies close idle connections: `with_keepalive` interleaves a marker whenever nothing came
for a while, and the stream writes an SSE comment for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["KEEPALIVE", "SSE_DONE", "SSE_KEEPALIVE", "SSEResponse", "sse", "with_keepalive"]

SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b": keep-alive\n\n"

T = TypeVar("T")


class _KeepAlive:
    def __repr__(self) -> str:
        return "KEEPALIVE"


KEEPALIVE = _KeepAlive()
"""What with_keepalive yields when `interval` seconds passed without an item."""


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


async def with_keepalive(items: AsyncIterable[T], interval: float) -> AsyncIterator[T | _KeepAlive]:
    """The items of `items`, and KEEPALIVE each time `interval` seconds pass without one.

    The pending __anext__ is kept across timeouts rather than cancelled (cancelling it would end
    the source iterator), and cancelled only when the consumer stops early.
    """
    iterator = items.__aiter__()
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield KEEPALIVE
                continue
            future, pending = pending, None
            try:
                item = future.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None:
            pending.cancel()


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
