"""OpenAI-shaped errors: {"error": {"message", "type", "param", "code"}} (plus "hint").

Every way a request can fail ends here: VibeEdgeError subclasses carry their own status,
FastAPI's validation errors become 400 (not 422), unknown routes 404, and anything unexpected a
500 that says it is a bug. A client mistake never produces a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from vibe_edge.errors import VibeEdgeError

log = logging.getLogger("vibe_edge.server")

_STATUS_TYPES = {
    400: ("invalid_request_error", "invalid_value"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "engine_busy"),
    503: ("server_error", "engine_unavailable"),
}


def error_body(message: str, *, type: str, code: str | None, param: str | None = None,
               hint: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": type, "param": param, "code": code}
    if hint:
        error["hint"] = hint
    return {"error": error}


def error_response(status: int, message: str, *, type: str | None = None, code: str | None = None,
                   param: str | None = None, hint: str | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    default_type, default_code = _STATUS_TYPES.get(status, ("server_error", "internal_error"))
    body = error_body(message, type=type or default_type, code=code or default_code, param=param,
                      hint=hint)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def vibe_error_body(exc: VibeEdgeError) -> dict[str, Any]:
    return error_body(exc.message, type=exc.type, code=exc.code, param=exc.param, hint=exc.hint)


def vibe_error_response(exc: VibeEdgeError, *, retry_after_s: int) -> JSONResponse:
    headers = {"Retry-After": str(retry_after_s)} if exc.status in (429, 503) else None
    return JSONResponse(vibe_error_body(exc), status_code=exc.status, headers=headers)


_UNION_TAGS_ORDER = ("system", "developer", "user", "assistant")
_UNION_TAGS = frozenset(_UNION_TAGS_ORDER)


def _loc_to_param(loc: Sequence[Any]) -> str | None:
    """('body', 'messages', 0, 'user', 'content', 'str') -> "messages[0].content"."""
    out = ""
    previous: Any = None
    for part in loc:
        if part == "body" and previous is None:
            pass
        elif isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or part in ("str", "int", "float", "bool"):
            pass  # the union member pydantic tried ("list[TextPart]", "function-after[...]")
        elif isinstance(previous, int) and part in _UNION_TAGS:
            pass  # the message role pydantic picked the model by, not a field
        else:
            out += ("." if out else "") + str(part)
        previous = part
    return out or None


def validation_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """One readable sentence for FastAPI/pydantic validation errors, and the parameter named."""
    if not errors:
        return "the request is not valid", None
    first = errors[0]
    # A union (content: string or list of parts) reports one error per alternative; the deepest
    # one is the informative one ("content[0].type should be 'text'", not "should be a string").
    head = _loc_to_param(first.get("loc", ())) or ""
    related = [e for e in errors if (_loc_to_param(e.get("loc", ())) or "").startswith(head)]
    first = max(related, key=lambda e: len(e.get("loc", ())), default=first)
    kind = first.get("type", "")
    loc = first.get("loc", ())
    if kind in ("json_invalid", "json_decode"):
        detail = (first.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON{': ' + str(detail) if detail else ''}", None
    param = _loc_to_param(loc)
    if param is None:
        if kind == "missing":
            return "the request needs a JSON object body", None
        return "the request body must be a JSON object", None
    message = str(first.get("msg", "invalid value"))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # a discriminated union (chat messages by role): name the field that chose wrongly
        field = str((first.get("ctx") or {}).get("discriminator", "")).strip("'\"") or "role"
        expected = (first.get("ctx") or {}).get("expected_tags") or ", ".join(_UNION_TAGS_ORDER)
        param = f"{param}.{field}"
        problem = "is missing" if kind == "union_tag_not_found" else "is not supported"
        return f"{param} {problem}; use one of {expected}", param
    if kind == "missing":
        message = "required parameter is missing"
    elif kind == "extra_forbidden":
        message = "unknown parameter"
    return f"{param}: {message}", param


def install_error_handlers(app: FastAPI, *, retry_after_s: int,
                           on_error: Callable[[str, int], None] = lambda path, status: None) -> None:
    """on_error(path, status) is told of every error response (for metrics)."""

    @app.exception_handler(VibeEdgeError)
    async def _vibe(request: Request, exc: VibeEdgeError) -> Response:
        on_error(request.url.path, exc.status)
        return vibe_error_response(exc, retry_after_s=retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        on_error(request.url.path, 400)
        message, param = validation_message(exc.errors())
        return error_response(400, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        if status == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(status, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        on_error(request.url.path, 500)
        log.exception("unhandled error while serving a request")
        return error_response(500, f"internal server error ({type(exc).__name__}); this is a bug "
                                   "in vibe-edge, please report it", type="server_error",
                              code="internal_error")
