"""Property-based fuzzing of the server's own OpenAPI schema with schemathesis: positive and
negative requests for every operation, against the real engine on the demo model. Whatever the
request, the answer is never a 5xx.

The server caps every generation at one token (ServerConfig.max_tokens, `serve --max-tokens`),
so the fuzzer exercises parsing, validation, templating, tokenizing, grammar and sampler
construction on the real engine without spending minutes decoding."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from vibe_edge.engine import Engine, EngineConfig  # noqa: E402
from vibe_edge.server import BackgroundServer, ServerConfig, create_app  # noqa: E402

schema = schemathesis.openapi.from_dict(create_app(ServerConfig()).openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzz_server(demo_model):
    engine = Engine(EngineConfig(model_path=str(demo_model), n_slots=2, ctx_per_slot=512, queue_size=16))
    srv = BackgroundServer(ServerConfig(model_id="demo", max_tokens=1), engine=engine)
    srv.start()
    yield srv
    srv.stop()
    engine.close()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_yields_a_server_error(case, fuzz_server):
    response = case.call(base_url=fuzz_server.url, timeout=60)
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}\n"
        f"body: {case.body!r}\nresponse: {response.text[:500]}")
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["message"] and error["type"]
