"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

import rcsgate
from rcsgate.clock import Clock, SystemClock
from rcsgate.config import Settings, get_settings
from rcsgate.console.app import mount_console
from rcsgate.dispatch.runner import Workers
from rcsgate.dispatch.runtime import Runtime
from rcsgate.gc_tuning import tune_for_service
from rcsgate.logging_setup import configure_logging
from rcsgate.metrics import multiprocess
from rcsgate.metrics.exposition import Exporter
from rcsgate.services.auth import TokenIssuer
from rcsgate.services.send_batcher import SendBatcher
from rcsgate.store.db import Database
from rcsgate.store.migrate import ensure_at_head
from rcsgate.store.signals import DUE, Signals

from .context import AppContext
from .docs_pages import install_docs
from .errors import error_responses, install_error_handlers
from .fast_lane import FastLane
from .middleware import RequestContextMiddleware
from .rate_limit import build_limiter
from .routers import accounts, auth, campaigns, contact_book, health, messages, metrics, upstream

DESCRIPTION = """
rcsgate: RCS business messaging with SMS fallback, wire-compatible with the RCS part of BSG One-API.

Authenticate with `POST /api/auth/login` and send `Authorization: Bearer <token>`, or send the
v1 header `X-API-KEY: <key>`. Every error is JSON `{"message": ..., "errors": {...}}`.
"""


class RcsgateApi(FastAPI):
    """FastAPI whose whole stack, Starlette's error middleware included, runs inside ``outer``.

    rcsgate's request middleware (request id, access log, size limits) and the fast lane go there:
    the hottest routes (the single send, Google's pushes) then pass no layer they do not need, and
    an error answer Starlette makes still carries its request id and is logged with its status."""

    outer: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return self.outer(stack) if self.outer is not None else stack


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    run_workers: bool = False,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or get_settings()
    clock = clock or SystemClock()
    secret = settings.resolved_jwt_secret()  # fail at startup, not at the first login
    if configure_logs:
        configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.from_url(settings.database_url)
        await ensure_at_head(db)
        signals = Signals(db)
        ctx = AppContext(
            settings=settings,
            db=db,
            clock=clock,
            tokens=TokenIssuer(secret=secret, ttl_seconds=settings.jwt_ttl_seconds, clock=clock),
            limiter=build_limiter(settings.rate_limit, db),
            signals=signals,
            sends=SendBatcher(
                db,
                clock,
                duplicate_window=settings.duplicate_window_seconds,
                on_accepted=lambda: signals.poke(DUE),
            ),
        )
        app.state.ctx = ctx
        runtime = (
            Runtime.build(settings=settings, db=db, clock=clock, signals=ctx.signals, role="serve")
            if run_workers
            else None
        )
        loops = runtime.loops() if runtime is not None else [("notify", ctx.signals.notify_loop)]
        app.state.metrics = Exporter(
            db=db,
            clock=clock,
            token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
            # The database gauges come from the process leading the sweeper (docs/deploy.md).
            leading=(lambda: runtime.dispatcher.leading) if runtime is not None else None,
        )
        workers = Workers(loops=loops)
        workers.start()
        try:
            yield
        finally:
            await ctx.sends.close()
            await workers.shutdown()
            await db.close()
            multiprocess.process_exit()

    app = RcsgateApi(
        title="rcsgate",
        version=rcsgate.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's pages load their assets from a CDN: served from this install instead (docs_pages).
        docs_url=None,
        redoc_url=None,
        # FastAPI's native OpenTelemetry is on by default and asks the global providers, on every
        # request, whether anyone configured them (~4 µs, 3 % of the API's CPU under Google's event
        # pushes, py-spy 2026-12-05). rcsgate's observability is its Prometheus metrics (docs/deploy.md).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_docs(app)
    install_error_handlers(app)
    # The fast lane inside the request-id, access-log and body-size middleware, both outside FastAPI.
    app.outer = lambda stack: RequestContextMiddleware(
        FastLane(
            stack,
            routes={("POST", "/api/messages/rcs/send"): messages.send_rcs},
            segments={("POST", upstream.RBM_EVENTS_PREFIX): ("name", upstream.rbm_events)},
        ),
        max_body_bytes=settings.max_body_bytes,
    )
    # The answers any /api route may give besides its own: the body-size and header limits (middleware,
    # http_server), input validation, the database being down, and for an account's routes its
    # credentials and rate limit.
    public = error_responses(413, 422, 431, 503)
    authenticated = error_responses(401, 413, 422, 429, 431, 503)
    app.include_router(auth.router, responses=public)
    app.include_router(accounts.router, responses=authenticated)
    app.include_router(messages.router, responses=authenticated)
    app.include_router(campaigns.router, responses=authenticated)
    app.include_router(contact_book.router, responses=authenticated)
    app.include_router(health.router)
    app.include_router(upstream.router)  # not in the OpenAPI document
    if settings.metrics_enabled:
        app.include_router(metrics.router)  # not in the OpenAPI document
    mount_console(app)  # the web console at /console/ (not in the OpenAPI document)
    _hoist_request_schemas(app)
    return app


def _hoist_request_schemas(app: FastAPI) -> None:
    """Request bodies validated by hand (to pass a validation context) document their schema through
    ``openapi_extra``; move its nested definitions to ``components`` where the references point."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                body = content.get("schema")
                if isinstance(body, dict) and "$defs" in body:
                    components.update(body.pop("$defs"))
                    title = body.get("title", "RequestBody")
                    components[title] = body
                    content["schema"] = {"$ref": f"#/components/schemas/{title}"}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory`` (``rcsgate api --workers N`` spawns one per process)."""
    app = create_app()
    tune_for_service()
    return app
