"""Report ingress of the simulator service: ``POST /api/upstream/simulator/events``.

Not an account's API: no credentials, only the shared-secret signature (RCSGATE_UPSTREAM_SECRET)
authenticates a batch. Left out of the OpenAPI document (``include_in_schema=False``) because it
is a contract with our own upstream, not with customers; docs/simulator.md describes it.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rcsgate.api.deps import Context
from rcsgate.api.errors import error_body
from rcsgate.connectors.simulator_wire import WebhookSignatureError, decode_reports, verify_reports
from rcsgate.logging_setup import get_logger
from rcsgate.services import dispatching
from rcsgate.store.signals import DUE

log = get_logger("rcsgate.api.upstream")

router = APIRouter(include_in_schema=False)

# A full batch (500 reports) with long postback data stays under this; the simulator splits larger ones.
MAX_INGRESS_BYTES: Final = 1024 * 1024


@router.post("/api/upstream/simulator/events")
async def simulator_events(request: Request, ctx: Context) -> JSONResponse:
    secret = ctx.settings.upstream_secret.get_secret_value() if ctx.settings.upstream_secret else ""
    if not secret:
        return JSONResponse(error_body("Not found."), status_code=404)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_INGRESS_BYTES:
        return JSONResponse(error_body("Request body too large."), status_code=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_INGRESS_BYTES:
            return JSONResponse(error_body("Request body too large."), status_code=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        verify_reports(secret, request.headers, body)
    except WebhookSignatureError:
        log.warning("upstream_report_signature_refused", bytes=size)
        return JSONResponse(error_body("Invalid signature."), status_code=401)
    try:
        reports = decode_reports(body)
    except ValueError as exc:
        return JSONResponse(error_body("The given data was invalid.", {"body": [str(exc)]}), status_code=422)
    changed = await dispatching.apply_reports(ctx.db, ctx.clock, reports) if reports else 0
    if changed:
        # An undelivered RCS may have produced an SMS fallback: send it now, not at the next poll.
        ctx.signals.poke(DUE)
    return JSONResponse({"received": len(reports), "changed": changed})
