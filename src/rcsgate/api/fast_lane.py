"""The single-send route served without FastAPI's per-request machinery.

At thousands of sends a second, FastAPI's route matching across included routers, dependency
resolution and its own middleware layers cost more CPU than accepting the message does. This ASGI
middleware hands a POST to the route's path straight to the handler FastAPI documents (the same
function, which FastAPI would also call with just the request), and maps what the handler raises
through the same error answers as the app's exception handlers. Everything else passes through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import exception_response

Handler = Callable[[Request], Awaitable[Response]]


class FastLane:
    def __init__(self, app: ASGIApp, *, routes: Mapping[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = dict(routes)  # (method, path) -> handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.routes.get((scope.get("method", ""), scope["path"])) if scope["type"] == "http" else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except Exception as exc:
            response = exception_response(exc)
        await response(scope, receive, send)
