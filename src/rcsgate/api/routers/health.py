from __future__ import annotations

from fastapi import APIRouter

from rcsgate.api.deps import Context
from rcsgate.api.schemas import ErrorBody, Health

router = APIRouter(tags=["Operations"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


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
