"""Pure ASGI middleware (no BaseHTTPMiddleware: it would break streaming and disconnects).

Order, outermost first: last resort (OpenAI-shaped errors for what escapes the app) -> browser
guard (Host, Origin) -> CORS (only when origins are given) -> API key -> body size limit and
JSON-only bodies -> app.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibe_edge.server.config import is_loopback_host
from vibe_edge.server.errors import error_body

log = logging.getLogger("vibe_edge.server")

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


def _split_host(value: str) -> tuple[str, str]:
    """'127.0.0.1:8080' -> ('127.0.0.1', '8080'); '[::1]:80' -> ('::1', '80')."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest.lstrip(":")
    if value.count(":") == 1:
        name, _, port = value.partition(":")
        return name, port
    return value, ""


class BrowserGuardMiddleware:
    """What a web page in the user's browser must not do to a local server.

    - DNS rebinding: a page on attacker.example re-points its name at 127.0.0.1 and then talks
      to us as "same origin". Its requests still say `Host: attacker.example`, so a keyless
      TCP server answers only to loopback Host values and the configured `allowed_hosts`.
      (With API keys the browser has no key to send; a Unix socket is out of a browser's reach.)
    - CSRF: a page may POST to http://127.0.0.1:8080 without asking (a "simple" request). A
      request whose Origin is neither this server itself nor a configured CORS origin is
      refused. (Bodies must also be declared JSON: see BodyLimitMiddleware.)
    - CORS's own refusals of a preflight are plain text: they are turned into OpenAI errors.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str], cors_origins: Iterable[str],
                 check_host: bool, on_reject: Callable[[str, int], None]):
        self.app = app
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in cors_origins)
        self.check_host = check_host
        self.on_reject = on_reject

    def _host_ok(self, host: str) -> bool:
        name, _port = _split_host(host)
        return bool(name) and (is_loopback_host(name) or name in self.allowed_hosts
                               or host.strip().lower() in self.allowed_hosts)

    def _origin_ok(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.cors_origins or "*" in self.cors_origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host.strip().lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        host = (_header(scope, b"host") or b"").decode("latin-1")
        server = scope.get("server")
        over_tcp = bool(server) and server[1] is not None  # a Unix socket has no port
        if self.check_host and over_tcp and not self._host_ok(host):
            self.on_reject(path, 403)
            await _send_error(send, 403, error_body(
                f"this server answers to loopback host names only, not {host or '(no Host)'!r}",
                type="invalid_request_error", code="host_not_allowed",
                hint="use http://127.0.0.1:PORT or http://localhost:PORT; to reach it under another "
                     "name, start it with --allowed-host NAME (or an API key)"))
            return
        origin = _header(scope, b"origin")
        if origin is not None and not self._origin_ok(origin.decode("latin-1"), host):
            self.on_reject(path, 403)
            await _send_error(send, 403, error_body(
                f"requests from the web origin {origin.decode('latin-1')!r} are not allowed",
                type="invalid_request_error", code="origin_not_allowed",
                hint="allow the page's origin with --cors-origin ORIGIN"))
            return
        if scope.get("method") == "OPTIONS" and _header(scope, b"access-control-request-method"):
            send = _json_plain_errors(send)
        await self.app(scope, receive, send)


def _json_plain_errors(send: Send) -> Send:
    """Rewrite a plain-text 4xx (Starlette's CORS preflight refusal) as an OpenAI error."""
    held: list[Message] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            ctype = dict(message.get("headers", ())).get(b"content-type", b"")
            if 400 <= message["status"] < 500 and ctype.startswith(b"text/plain"):
                held.append(message)
                return
        elif held and message["type"] == "http.response.body":
            text = bytes(message.get("body", b"")).decode("utf-8", "replace").strip()
            start = held[0]
            headers = [(k, v) for k, v in start.get("headers", ())
                       if k.lower() not in (b"content-type", b"content-length")]
            await _send_error(send, start["status"], error_body(
                f"CORS preflight refused: {text or 'not allowed'}", type="invalid_request_error",
                code="cors_refused"), headers)
            return
        await send(message)

    return wrapped


class LastResortMiddleware:
    """Outermost: whatever escapes the app before a response started becomes an OpenAI error
    instead of uvicorn's plain-text 500. A request cancelled by shutdown gets 503 (a balancer
    retries elsewhere); anything else is a bug, 500."""

    def __init__(self, app: ASGIApp, *, retry_after_s: int):
        self.app = app
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if started:
                raise
            log.warning("a request was cancelled by the server's shutdown before it was answered")
            await _send_error(send, 503, error_body(
                "the server is shutting down; the request was cancelled", type="server_error",
                code="engine_unavailable", hint="retry against a running server"),
                [(b"retry-after", str(self.retry_after_s).encode())])
        except Exception:
            if started:
                raise
            log.exception("unhandled error while serving a request")
            await _send_error(send, 500, error_body(
                "internal server error; this is a bug in vibe-edge, please report it",
                type="server_error", code="internal_error"))


JSON_MEDIA_HINT = "send the body as JSON with 'Content-Type: application/json' (curl: add -H 'Content-Type: application/json')"


def _is_json_media_type(value: bytes) -> bool:
    media = value.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, by Content-Length up front or by
    counting a chunked body; the body is buffered (it is small) and replayed to the app, and
    later receive() calls pass through so the app still sees the client disconnect.

    Every POST body here is JSON, and must say so: text/plain, form types and a missing
    Content-Type are what a web page can send cross-site without asking (a "simple" request),
    so they get 415 instead of being read as JSON.
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
        if scope.get("method") == "POST":
            ctype = _header(scope, b"content-type")
            if ctype is None or not _is_json_media_type(ctype):
                self.on_reject(path, 415)
                shown = ctype.decode("latin-1") if ctype is not None else "none"
                await _send_error(send, 415, error_body(
                    f"the request body must be JSON (Content-Type: application/json), not {shown!r}",
                    type="invalid_request_error", code="unsupported_media_type", hint=JSON_MEDIA_HINT))
                return
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
