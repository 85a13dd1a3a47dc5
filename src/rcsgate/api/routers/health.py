from __future__ import annotations

from fastapi import APIRouter, Response

from rcsgate.api.deps import Context
from rcsgate.api.schemas import ErrorBody, Health

router = APIRouter(tags=["Operations"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


# HEAD answers what GET would, without a body (load balancers and uptime checks probe with HEAD).
@router.head("/healthz", include_in_schema=False)
async def healthz_head() -> Response:
    return Response(status_code=200)


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": ErrorBody}},
    summary="The database answers and takes writes",
)
async def readyz(ctx: Context) -> Health:
    await ctx.db.ping()
    # After a write failed for lack of space: not ready until a write commits again.
    await ctx.db.probe_write()
    return Health(status="ready")


@router.head("/readyz", include_in_schema=False)
async def readyz_head(ctx: Context) -> Response:
    await readyz(ctx)  # a 503 when not ready, as GET (its body dropped by the server)
    return Response(status_code=200)
