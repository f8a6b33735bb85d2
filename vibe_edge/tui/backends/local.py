"""The engine in this process, through its public API only (vibe_edge.types.EngineAPI)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from vibe_edge.tui.backends.base import Backend, BackendError, ChatStream
from vibe_edge.types import EngineAPI, GenerationRequest

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    """`factory` builds the engine (in a thread: loading takes a while), or give a running
    `engine` (not closed by aclose, its owner closes it)."""

    kind = "local"

    def __init__(self, factory: Callable[[], EngineAPI] | None = None, *, engine: EngineAPI | None = None,
                 notices: list[str] | None = None):
        if factory is None and engine is None:
            raise ValueError("give a factory or an engine")
        self.notices = notices if notices is not None else []
        self._factory = factory
        self.engine = engine
        self._owns = engine is None
        if engine is not None:
            self._adopt(engine)

    def _adopt(self, engine: EngineAPI) -> None:
        info = engine.info
        self.model_name = info.name
        self.context_size = info.ctx_per_slot
        self.thinks = info.thinks
        self.slots = info.n_slots

    async def start(self) -> None:
        if self.engine is None:
            assert self._factory is not None
            self.engine = await asyncio.to_thread(self._factory)
            self._adopt(self.engine)

    async def submit(self, request: GenerationRequest) -> ChatStream:
        if self.engine is None:
            raise BackendError("the model is still loading", hint="wait for the status line to say ready")
        return self.engine.submit(request)  # a RequestStream: async-iterable, cancel()

    async def aclose(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None and self._owns:
            await asyncio.to_thread(engine.close)
