"""Pure ASGI middleware (no BaseHTTPMiddleware: it would break streaming and disconnects).

Order, outermost first: CORS (only when origins are given) -> API key -> body size limit -> app.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibe_edge.server.errors import error_body

OPEN_PATHS = frozenset({"/health"})


async def _send_error(send: Send, status: int, body: dict, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


class ApiKeyMiddleware:
    """Bearer-key check for every path but /health. Keys are compared in constant time, and
    every configured key is compared, so timing says nothing about which one nearly matched."""

    def __init__(self, app: ASGIApp, *, keys: Iterable[str], on_reject: Callable[[str, int], None]):
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await self.app(scope, receive, send)  # CORS preflight carries no credentials
            return
        given = _header(scope, b"authorization") or b""
        scheme, _, token = given.partition(b" ")
        token = token.strip()
        ok = False
        if scheme.lower() == b"bearer" and token:
            for key in self.keys:
                ok |= hmac.compare_digest(token, key)
        if ok:
            await self.app(scope, receive, send)
            return
        self.on_reject(scope.get("path", ""), 401)
        message = ("a valid API key is required: send it as 'Authorization: Bearer KEY'" if not given
                   else "the API key is not valid")
        await _send_error(send, 401, error_body(message, type="invalid_request_error",
                                                code="invalid_api_key"),
                          [(b"www-authenticate", b"Bearer")])


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, by Content-Length up front or by
    counting a chunked body; the body is buffered (it is small) and replayed to the app, and
    later receive() calls pass through so the app still sees the client disconnect.

    Every POST body here is JSON, so a missing or wrong Content-Type (curl -d sends a form
    type) is read as JSON rather than refused, as llama-server and OpenAI do.
    """

    def __init__(self, app: ASGIApp, *, limit: int, on_reject: Callable[[str, int], None]):
        self.app = app
        self.limit = limit
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if scope.get("method") == b"POST" or scope.get("method") == "POST":
            ctype = (_header(scope, b"content-type") or b"").lower()
            if b"json" not in ctype:
                headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                await _send_error(send, 400, error_body("invalid Content-Length header",
                                                        type="invalid_request_error",
                                                        code="invalid_value"))
                return
            if size > self.limit:
                await self._too_large(send, path)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.limit:
                await self._too_large(send, path)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, path: str) -> None:
        self.on_reject(path, 413)
        await _send_error(send, 413, error_body(
            f"the request body is larger than this server's limit of {self.limit} bytes",
            type="invalid_request_error", code="request_too_large"))
