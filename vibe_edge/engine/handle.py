"""RequestHandle: the caller's side of one submitted request.

The scheduler thread pushes events; the caller reads them either blocking (`for ev in handle`)
or from an asyncio loop (`async for ev in handle`). The hand-off to asyncio is
`loop.call_soon_threadsafe`, so a slow consumer never blocks the scheduler.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator

from vibe_edge.types import Event, Finished, GenerationResult


class RequestHandle:
    def __init__(self, request_id: str, on_cancel: Callable[[], None] | None = None):
        self.request_id = request_id
        self._on_cancel = on_cancel  # wakes the scheduler so a cancel lands within one step
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aqueue: asyncio.Queue[Event] | None = None
        self._done = threading.Event()
        self._result: GenerationResult | None = None
        self.cancel_requested = False

    # -- producer side (the engine's scheduler, or a stand-in engine such as a test double) ------
    def emit(self, event: Event) -> None:
        """Deliver one event to the consumer, from any thread; Finished also settles result()."""
        if isinstance(event, Finished):
            self._result = event.result
        with self._lock:
            loop, aqueue = self._loop, self._aqueue
            if loop is None:
                self._events.put(event)
        if loop is not None and aqueue is not None:
            try:
                loop.call_soon_threadsafe(aqueue.put_nowait, event)
            except RuntimeError:  # the consumer's loop is closed: nobody is listening any more
                pass
        if isinstance(event, Finished):
            self._done.set()

    # -- caller side ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop this request as soon as possible (thread-safe, idempotent)."""
        self.cancel_requested = True
        if self._on_cancel is not None:
            self._on_cancel()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> GenerationResult:
        """Block until the request finishes; its GenerationResult."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.request_id} did not finish within {timeout} s")
        assert self._result is not None
        return self._result

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self._events.get()
            yield event
            if isinstance(event, Finished):
                return

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Event]:
        aqueue: asyncio.Queue[Event] = asyncio.Queue()
        with self._lock:
            # Events pushed before we attached are waiting in the blocking queue: move them.
            while True:
                try:
                    aqueue.put_nowait(self._events.get_nowait())
                except queue.Empty:
                    break
            self._loop, self._aqueue = asyncio.get_running_loop(), aqueue
        while True:
            event = await aqueue.get()
            yield event
            if isinstance(event, Finished):
                return
