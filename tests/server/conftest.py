"""Server fixtures: one real engine on the demo model for the whole session, shared by the
servers that need it (the servers never close it), and loopback-only servers on ephemeral ports."""

from __future__ import annotations

import time

import httpx
import pytest

from vibe_edge.engine import Engine, EngineConfig
from vibe_edge.server import BackgroundServer, ServerConfig

SLOTS = 4
CTX = 1024
MODEL_ID = "demo"


@pytest.fixture(scope="session")
def engine(demo_model):
    with Engine(EngineConfig(model_path=demo_model, n_slots=SLOTS, ctx_per_slot=CTX)) as eng:
        yield eng


@pytest.fixture(scope="session")
def server(engine):
    srv = BackgroundServer(ServerConfig(model_id=MODEL_ID, default_preset="general"), engine=engine)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def wait_idle(engine, timeout: float = 15.0) -> None:
    """Wait until no slot is busy and nothing is queued (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = engine.status()
        if status.busy_slots == 0 and status.queued == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the engine is still busy after {timeout} s: {engine.status()}")
