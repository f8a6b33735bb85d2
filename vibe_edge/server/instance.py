"""The instance's name on every response (X-Vibe-Edge-Instance), for deployments of several.

Behind a balancer, the header says which instance served a request: a client sees where its
conversation lives, an operator can match a slow answer to an instance's logs, and the deploy
tests check that every turn of a conversation stayed on one instance.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vibe_edge.deploy.routing import INSTANCE_HEADER


class InstanceHeaderMiddleware:
    """Pure ASGI (streaming and disconnects pass through untouched): one header added to the
    start of every HTTP response, errors included."""

    def __init__(self, app: ASGIApp, *, name: str):
        self.app = app
        self.header = (INSTANCE_HEADER.lower().encode("latin-1"), name.encode("ascii"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, send_named)
