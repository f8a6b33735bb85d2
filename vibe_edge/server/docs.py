"""Swagger UI at /docs from local files: FastAPI's own /docs and /redoc load their scripts from
a CDN, which an offline machine cannot reach. Without swagger-ui-bundle there is no /docs at
all (/openapi.json is there either way)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from starlette.responses import Response

log = logging.getLogger("vibe_edge.server")

DOCS_PATH = "/docs"
DOCS_ASSETS = "/docs/assets"


def add_offline_docs(app: FastAPI) -> None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        log.info("swagger-ui-bundle is not installed: /docs is off (/openapi.json still works)")
        return
    from fastapi.openapi.docs import get_swagger_ui_html
    from starlette.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"), title=f"{app.title} - API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png", oauth2_redirect_url=None)
