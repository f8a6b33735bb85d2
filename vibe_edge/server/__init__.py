"""The OpenAI-compatible HTTP server (FastAPI + uvicorn) over the engine. See docs/SERVER.md."""

from vibe_edge.server.app import create_app
from vibe_edge.server.config import ServerConfig, is_loopback_host, read_api_keys
from vibe_edge.server.host import ModelHost
from vibe_edge.server.runner import BackgroundServer, bind_tcp, bind_unix, check_exposure, run_server

__all__ = [
    "BackgroundServer", "ModelHost", "ServerConfig", "bind_tcp", "bind_unix", "check_exposure",
    "create_app", "is_loopback_host", "read_api_keys", "run_server",
]
