"""ModelHost: the engine as the server sees it - loading, ready, failed or stopping.

The server knows the engine only as vibe_edge.types.EngineAPI (submit, status, info, close), so
it runs on the real engine or on a test double alike.

The server binds its socket first and loads the model in a background thread, so /health can
say 503 while loading and a supervisor sees the port at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from vibe_edge.errors import EngineClosed, VibeEdgeError
from vibe_edge.types import EngineAPI, EngineStatus

log = logging.getLogger("vibe_edge.server")

State = Literal["loading", "ready", "failed", "stopping", "stopped"]


class ModelHost:
    def __init__(self, engine: EngineAPI | None = None, *, owns_engine: bool = True,
                 model_id: str | None = None):
        self.engine: EngineAPI | None = engine
        self.owns_engine = owns_engine
        self.state: State = "ready" if engine is not None else "loading"
        self.error: BaseException | None = None
        self._model_id = model_id
        self.created = int(time.time())
        self._ready = threading.Event()
        self._closing: threading.Thread | None = None
        self._lock = threading.Lock()
        if engine is not None:
            self._ready.set()

    # -- loading --------------------------------------------------------------------------------
    def load_in_background(self, loader: Callable[[], EngineAPI],
                           on_ready: Callable[[ModelHost], None] | None = None,
                           on_error: Callable[[BaseException], None] | None = None) -> threading.Thread:
        def run() -> None:
            try:
                engine = loader()
            except BaseException as exc:  # noqa: BLE001 - reported to the caller, never lost
                self.error = exc
                self.state = "failed"
                self._ready.set()
                if not isinstance(exc, VibeEdgeError):
                    log.exception("loading the model failed")
                if on_error is not None:
                    on_error(exc)
                return
            with self._lock:
                if self.state == "loading":
                    self.engine, self.state = engine, "ready"
                    late = False
                else:  # shut down while loading
                    late = True
            if late:
                engine.close()
                self._ready.set()
                return
            self._ready.set()
            if on_ready is not None:
                on_ready(self)

        thread = threading.Thread(target=run, name="vibe-edge-load", daemon=True)
        thread.start()
        return thread

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout) and self.state == "ready"

    # -- serving --------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def model_id(self) -> str:
        if self._model_id:
            return self._model_id
        if self.engine is not None:
            return self.engine.info.name
        return "loading"

    def require_engine(self) -> EngineAPI:
        """The engine, or EngineClosed (503) saying why there is none."""
        engine = self.engine
        if self.state == "ready" and engine is not None:
            return engine
        if self.state == "loading":
            raise EngineClosed("the model is still loading", hint="retry in a few seconds; "
                               "GET /health answers 200 once it is ready")
        if self.state == "failed":
            raise EngineClosed(f"the model failed to load: {self.error}",
                               hint="see the server's output, fix the cause and restart it")
        raise EngineClosed("the server is shutting down and takes no new requests",
                           hint="retry against a running server")

    def status(self) -> EngineStatus | None:
        engine = self.engine
        if engine is None or self.state not in ("ready", "stopping"):
            return None
        try:
            return engine.status()
        except Exception:  # noqa: BLE001 - a metrics scrape during shutdown
            return None

    # -- shutdown -------------------------------------------------------------------------------
    def begin_shutdown(self, grace_s: float) -> None:
        """Refuse new work now; finish running work for up to grace_s in a background thread,
        then cancel what is left. Idempotent."""
        with self._lock:
            if self._closing is not None:
                return
            previous = self.state
            self.state = "stopping" if previous in ("ready", "loading") else previous
            engine = self.engine if self.owns_engine else None
            self._closing = threading.Thread(target=self._close, args=(engine, grace_s),
                                             name="vibe-edge-shutdown", daemon=True)
        self._closing.start()

    def _close(self, engine: EngineAPI | None, grace_s: float) -> None:
        if engine is not None:
            try:
                engine.close(grace_s=grace_s)
            except Exception:  # noqa: BLE001
                log.exception("closing the engine failed")
        self.state = "stopped"

    def wait_closed(self, timeout: float | None = None) -> None:
        """Block until the shutdown begun by begin_shutdown has closed the engine."""
        closing = self._closing
        if closing is not None:
            closing.join(timeout)

    def finish_shutdown(self, timeout: float | None = None) -> None:
        self.begin_shutdown(0.0)
        assert self._closing is not None
        self._closing.join(timeout)
