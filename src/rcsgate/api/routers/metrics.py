"""GET /metrics: Prometheus metrics of this process, or of its `rcsgate api --workers N` group
(metrics/exposition.py). Not account data, and not in the OpenAPI document; open unless
RCSGATE_METRICS_TOKEN is set (docs/deploy.md, "Metrics")."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rcsgate.domain.errors import Unauthenticated
from rcsgate.metrics.exposition import CONTENT_TYPE, Exporter

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    exporter: Exporter = request.app.state.metrics
    if not exporter.authorized(request.headers.get("authorization")):
        raise Unauthenticated()
    return Response(await exporter.render(), media_type=CONTENT_TYPE)
