"""The one small interface the chat talks to, whatever answers: `start()` once, `submit()` per
reply (an EventStream of the engine's own events, Started -> (TextDelta | Notice)* ->
Finished, Finished exactly once, and cancel()), `aclose()` at the end."""

from __future__ import annotations

from abc import ABC, abstractmethod

from vibe_edge.errors import VibeEdgeError
from vibe_edge.types import EventStream, GenerationRequest

__all__ = ["Backend", "BackendError", "ChatStream"]

ChatStream = EventStream
"""What submit() returns (the name the chat's code uses)."""


class BackendError(VibeEdgeError):
    """The backend cannot serve: model failed to load, server unreachable."""

    status, type, code = 503, "server_error", "backend_unavailable"


class Backend(ABC):
    """One source of replies. `start()` once (may take seconds: loading a model), then
    `submit()` per reply, then `aclose()`."""

    kind: str = "?"
    model_name: str = "?"
    context_size: int | None = None  # tokens a conversation may use (prompt + reply); None unknown
    thinks: bool | None = None       # the model writes <think> blocks (None: unknown)
    slots: int | None = None         # sequences decoded at once: the most samples a reply may draw
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
