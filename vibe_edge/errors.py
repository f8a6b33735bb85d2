"""Errors that vibe-edge raises on purpose.

Every error says what went wrong *and what to do*: the CLI prints `message` (and `hint`), the
server maps `status`/`type`/`code`/`param` onto an OpenAI-style error body. Anything that is not
a VibeEdgeError reaching a user is a bug.
"""

from __future__ import annotations


class VibeEdgeError(Exception):
    """Base class. `status` is the HTTP status the server answers with."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, hint: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.param = param

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class SettingsError(VibeEdgeError):
    status, type, code = 400, "invalid_request_error", "invalid_setting"


class ModelNotFound(VibeEdgeError):
    status, type, code = 404, "invalid_request_error", "model_not_found"


class ModelFileError(VibeEdgeError):
    """The file is not a usable GGUF: not GGUF at all, truncated, or an unsupported architecture."""

    status, type, code = 400, "invalid_request_error", "invalid_model_file"


class PlanError(VibeEdgeError):
    """The model and the requested plan do not fit this machine (raised before loading)."""

    status, type, code = 400, "invalid_request_error", "does_not_fit"


class InvalidRequest(VibeEdgeError):
    """A client mistake: a bad parameter value, a malformed message list."""

    status, type, code = 400, "invalid_request_error", "invalid_value"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class EngineBusy(VibeEdgeError):
    """The request queue is full: try again later (HTTP 429 with Retry-After)."""

    status, type, code = 429, "rate_limit_error", "engine_busy"


class EngineClosed(VibeEdgeError):
    """The engine is loading, shutting down or was closed (HTTP 503)."""

    status, type, code = 503, "server_error", "engine_unavailable"
