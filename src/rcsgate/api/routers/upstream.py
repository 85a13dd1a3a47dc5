"""Where upstreams push to us: the simulator service's reports (``POST /api/upstream/simulator/events``)
and Google RBM's events (``POST /api/upstream/rbm/{name}``).

Not an account's API: no credentials, only signatures authenticate a push (the simulator's shared
secret, RCSGATE_UPSTREAM_SECRET; the RBM connector's client token). Left out of the OpenAPI document
(``include_in_schema=False``) because these are contracts with upstreams, not with customers;
docs/simulator.md and docs/connectors/rbm.md describe them.
"""

from __future__ import annotations

from functools import partial
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from rcsgate.api.context import context_of
from rcsgate.api.deps import Context
from rcsgate.api.errors import error_body
from rcsgate.connectors.simulator_wire import WebhookSignatureError, decode_reports, verify_reports
from rcsgate.logging_setup import get_logger
from rcsgate.services import dispatching, upstream_events
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
    body = await _body(request)
    if body is None:
        return JSONResponse(error_body("Request body too large."), status_code=413)
    size = len(body)
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


# Served by api.fast_lane (two pushes per message come here); the route below is the same handler,
# for an app without the fast lane.
RBM_EVENTS_PREFIX: Final = "/api/upstream/rbm"


@router.post(RBM_EVENTS_PREFIX + "/{name}")
async def rbm_events(request: Request) -> Response:
    """Google's pushes for the RBM connector ``name``: the validation handshake, then signed events,
    each stored before the 200 that tells Google it may forget it, and applied right after."""
    ctx = context_of(request)
    body = await _body(request)
    if body is None:
        return JSONResponse(error_body("Request body too large."), status_code=413)
    answer = await upstream_events.rbm_push(
        ctx.db,
        ctx.clock,
        name=request.path_params["name"],
        body=body,
        signature=request.headers.get("x-goog-signature"),
        # An expiry produced an SMS fallback: send it now. Nothing else an event does makes a message
        # due, so the dispatchers are not woken (and made to look) for every delivery and read.
        wake=partial(ctx.signals.poke, DUE),
    )
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


async def _body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than MAX_INGRESS_BYTES (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_INGRESS_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_INGRESS_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
