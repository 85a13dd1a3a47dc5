"""The hottest routes served without FastAPI's per-request machinery.

At thousands of requests a second, FastAPI's route matching across included routers, dependency
resolution and its own middleware layers cost more CPU than the work of the request does: the
single send, and Google's RBM event pushes (two per message, one event each, as Pub/Sub push
delivers them). This ASGI middleware hands such a request straight to the handler FastAPI
documents (the same function, which FastAPI would also call with just the request), and maps what
the handler raises through the same error answers as the app's exception handlers. Everything
else passes through.

Two kinds of route: an exact (method, path), and a (method, prefix) whose path ends in one more
non-empty segment, handed to the handler as the path parameter ``request.path_params[name]``
(what FastAPI's ``{name}`` would match: one segment, no ``/``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import exception_response

Handler = Callable[[Request], Awaitable[Response]]


class FastLane:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Mapping[tuple[str, str], Handler],
        segments: Mapping[tuple[str, str], tuple[str, Handler]] | None = None,
    ) -> None:
        self.app = app
        self.routes = dict(routes)  # (method, path) -> handler
        # (method, prefix without its trailing /) -> (path parameter name, handler)
        self.segments = dict(segments or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handler(scope) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except Exception as exc:
            response = exception_response(exc)
        await response(scope, receive, send)

    def _handler(self, scope: Scope) -> Handler | None:
        method, path = scope.get("method", ""), scope["path"]
        handler = self.routes.get((method, path))
        if handler is not None or not self.segments:
            return handler
        prefix, _, last = path.rpartition("/")
        hit = self.segments.get((method, prefix))
        if hit is None or not last:
            return None
        name, handler = hit
        scope["path_params"] = {name: last}
        return handler
