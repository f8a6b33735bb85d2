"""Deployment fixtures: one real engine on the demo model for the tests that need a server."""

from __future__ import annotations

import pytest

from vibe_edge.engine import Engine, EngineConfig


@pytest.fixture(scope="module")
def engine(demo_model):
    with Engine(EngineConfig(model_path=demo_model, n_slots=2, ctx_per_slot=512)) as eng:
        yield eng
