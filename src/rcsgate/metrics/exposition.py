"""``GET /metrics``: what this process (or, under `rcsgate api --workers N`, its group) recorded, in
Prometheus' text format, plus what is read at scrape time: ``rcsgate_build_info`` and, from the one
process leading the sweeper, the database gauges (``db_gauges``).

Served on the API port by `rcsgate serve` and `rcsgate api` (``api/routers/metrics.py``), and by
`rcsgate worker` on its own port (``serve_worker_metrics``) when ``RCSGATE_METRICS_PORT`` is set.
With ``RCSGATE_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import platform
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

import rcsgate
from rcsgate.clock import Clock
from rcsgate.logging_setup import get_logger
from rcsgate.metrics import db_gauges, multiprocess
from rcsgate.store.db import Database

# What generate_latest writes (spelled out: prometheus-client's CONTENT_TYPE_LATEST names a newer
# format version from 0.22 on).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

log = get_logger("rcsgate.metrics")


class _AtScrape:
    """The metrics made at scrape time, by the process that answers it."""

    def __init__(self, gauges: db_gauges.DbGauges | None) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "rcsgate_build_info", "The running version (always 1).", labels=["version", "python"]
        )
        info.add_metric([rcsgate.__version__, platform.python_version()], 1)
        yield info
        if self.gauges is not None:
            yield from self.gauges.metrics()


def _recorded() -> bytes:
    if multiprocess.active():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class Exporter:
    """One process's /metrics. ``leading``: whether this process exports the database gauges (None:
    it never does)."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        token: str | None = None,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self._token = token.encode() if token else None
        self.leading = leading

    def authorized(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    async def render(self) -> bytes:
        gauges = None
        if self.leading is not None and self.leading():
            try:
                gauges = await db_gauges.read(self.db, self.clock.now())
            except Exception as exc:  # the database is away: the process's own metrics still answer
                log.warning("metrics_database_gauges_failed", error=type(exc).__name__)
        return _recorded() + generate_latest(_AtScrape(gauges))


async def serve_worker_metrics(exporter: Exporter, host: str, port: int) -> web.AppRunner:
    """`rcsgate worker`'s /metrics on its own port, in its event loop; ``cleanup()`` the runner to stop."""

    async def handle(request: web.Request) -> web.Response:
        if not exporter.authorized(request.headers.get("Authorization")):
            return web.json_response(
                {"message": "Unauthenticated.", "errors": {}},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return web.Response(body=await exporter.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
