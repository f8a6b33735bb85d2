"""GET /health (503 while loading or stopping, 200 when ready; never needs a key) and
GET /metrics (Prometheus text)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from vibe_edge.errors import EngineClosed
from vibe_edge.server.errors import vibe_error_body
from vibe_edge.server.metrics import CONTENT_TYPE

HEALTH_PATH = "/health"

router = APIRouter(tags=["server"])


@router.head(HEALTH_PATH, include_in_schema=False)
@router.get(HEALTH_PATH)
async def health(request: Request) -> Response:
    host, config = request.app.state.host, request.app.state.config
    if host.ready:
        status = host.status()
        body: dict[str, Any] = {"status": "ok", "model": host.model_id}
        if status is not None:
            body.update(slots=status.n_slots, busy_slots=status.busy_slots, queued=status.queued)
        return JSONResponse(body)
    try:
        host.require_engine()
        reason = EngineClosed("the server is not ready")
    except EngineClosed as exc:
        reason = exc
    return JSONResponse({"status": host.state, **vibe_error_body(reason)}, status_code=503,
                        headers={"Retry-After": str(config.retry_after_s)})


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
