"""The FastAPI app: middleware, error handlers and the routers, over a ModelHost.

    POST /v1/chat/completions   chat, streaming (SSE) or not, reasoning in reasoning_content
    POST /v1/completions        raw prompt text, streaming or not
    GET  /v1/models             the one model served
    GET  /health                503 while loading or stopping, 200 when ready (no key needed)
    GET  /metrics               Prometheus text format
    GET  /docs                  Swagger UI, from local files (server/docs.py)

The app only assembles: each API is a router (server/openai/router.py, server/health.py) whose
routes hand requests to serving objects kept in app.state; the engine does batching, caching,
cancellation and deadlines.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from vibe_edge import __version__ as _version
from vibe_edge.server.config import ServerConfig
from vibe_edge.server.docs import add_offline_docs
from vibe_edge.server.errors import install_error_handlers
from vibe_edge.server.health import router as health_router
from vibe_edge.server.host import ModelHost
from vibe_edge.server.instance import InstanceHeaderMiddleware
from vibe_edge.server.metrics import Metrics
from vibe_edge.server.middleware import ApiKeyMiddleware, BodyLimitMiddleware, BrowserGuardMiddleware
from vibe_edge.server.openai.chat import OpenAIServingChat
from vibe_edge.server.openai.completions import OpenAIServingCompletion
from vibe_edge.server.openai.models import OpenAIServingModels
from vibe_edge.server.openai.router import ENDPOINTS, OpenAIServings
from vibe_edge.server.openai.router import router as openai_router


def create_app(config: ServerConfig | None = None, host: ModelHost | None = None) -> FastAPI:
    config = config or ServerConfig()
    host = host or ModelHost()
    metrics = Metrics(host.status, lambda: host.ready)

    # FastAPI's /docs and /redoc load their scripts from a CDN: /docs is served offline instead.
    app = FastAPI(title="vibe-edge", version=_version, docs_url=None, redoc_url=None,
                  description="OpenAI-compatible API for VibeThinker-1.5B on llama.cpp")
    app.state.host = host
    app.state.config = config
    app.state.metrics = metrics
    app.state.openai = OpenAIServings(chat=OpenAIServingChat(host, config, metrics),
                                      completions=OpenAIServingCompletion(host, config, metrics),
                                      models=OpenAIServingModels(host))

    def on_reject(path: str, status: int) -> None:
        if path in ENDPOINTS:
            metrics.rejected(ENDPOINTS[path], status)

    install_error_handlers(app, retry_after_s=config.retry_after_s, on_error=on_reject)

    # add_middleware wraps: the last added is the outermost.
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes, on_reject=on_reject)
    if config.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=config.api_keys, on_reject=on_reject)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BrowserGuardMiddleware, allowed_hosts=config.allowed_hosts,
                       cors_origins=config.cors_origins, check_host=not config.api_keys,
                       on_reject=on_reject)
    add_offline_docs(app)
    if config.instance:  # outermost: every response names its instance, refusals included
        app.add_middleware(InstanceHeaderMiddleware, name=config.instance)

    app.include_router(health_router)
    app.include_router(openai_router)
    return app
