"""Single RCS send and message status queries."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response

from rcsgate.api.bodies import body_schema, json_body, parse, request_key
from rcsgate.api.context import context_of
from rcsgate.api.deps import (
    INT64_MAX,
    SEND_SECURITY,
    Context,
    CurrentPrincipal,
    PageLimit,
    PageOffset,
    bearer_token,
    send_caller,
)
from rcsgate.api.rcs_requests import MAX_CHARS, SendRcsMessageRequest
from rcsgate.api.schemas import (
    AlternativeChannels,
    ErrorBody,
    FallbackSms,
    MessageInfo,
    MessageListItem,
    MessageResponse,
    MessagesResponse,
)
from rcsgate.domain.errors import DomainError, InvalidInput
from rcsgate.domain.message_view import MessageView
from rcsgate.domain.money import format_units
from rcsgate.domain.timefmt import format_ts
from rcsgate.metrics.instruments import accept_timer
from rcsgate.services import auth, message_queries
from rcsgate.services.sending import SendRequest, TokenClaims

IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX = 255
_IDEMPOTENCY_KEY_DOC = "Same key and body again: the original answer; same key, other body: 422."

router = APIRouter(prefix="/api", tags=["RCS messages"], responses={401: {"model": ErrorBody}})


def info(view: MessageView) -> dict[str, Any]:
    return {
        "id": view.id,
        "reference_id": view.reference_id,
        "source": "rest",
        "type": view.type,
        "phone": int(view.phone),
        "status": view.status,
        "validity": view.validity_hours,
        "amount": {"value": _amount(view.amount_units), "currency": view.currency},
        "sender": view.sender,
        "created_at": format_ts(view.created_at, view.timezone),
        "sent_at": format_ts(view.sent_at, view.timezone),
        "delivered_at": format_ts(view.delivered_at, view.timezone),
    }


def list_item(view: MessageView) -> MessageListItem:
    content = view.content or {}
    fallback = (
        AlternativeChannels(sms=FallbackSms(parts=view.fallback_parts, id=list(view.fallback_ids)))
        if view.fallback_parts is not None
        else None
    )
    return MessageListItem(
        **info(view),
        campaign_id=view.campaign_id,
        country=view.country,
        text=content.get("text") if view.type == "sms" else None,
        parts=view.parts,
        rcs_options=content if view.type == "rcs" else None,
        alternative_channels=fallback,
        fail_reason=view.fail_reason,
    )


def list_entry(view: MessageView) -> dict[str, Any]:
    """``list_item(view)`` as FastAPI would serialise it (``model_dump(mode="json")``), built directly:
    a page of up to 500 messages skips two pydantic validations per message. Same keys, same order
    (tests/test_message_queries.py holds the two to each other)."""
    content = view.content or {}
    return {
        **info(view),
        "campaign_id": view.campaign_id,
        "country": view.country,
        "text": content.get("text") if view.type == "sms" else None,
        "parts": view.parts,
        "rcs_options": content if view.type == "rcs" else None,
        "alternative_channels": (
            {"sms": {"parts": view.fallback_parts, "id": list(view.fallback_ids)}}
            if view.fallback_parts is not None
            else None
        ),
        "fail_reason": view.fail_reason,
    }


# A page's messages mostly share a few prices.
_amount = lru_cache(maxsize=1024)(format_units)


def messages_json(views: list[MessageView], *, total: int, offset: int, limit: int) -> bytes:
    """The MessagesResponse body, byte for byte as FastAPI renders the model (JSONResponse's compact
    json.dumps, not ASCII-escaped). orjson writes the same bytes for what a message holds (strings,
    integers, booleans, nulls; no floats) in a fifth of the time; an integer beyond 64 bits, which
    it refuses, goes the slow way."""
    body = {
        "data": [list_entry(v) for v in views],
        "meta": {"page": {"total": total, "offset": offset, "limit": limit}},
    }
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


# Documented here, served by api.fast_lane: the documentation describes by hand (openapi_extra) the
# header and schemes FastAPI would otherwise derive from parameters it resolves on every request.
_SEND_DOCS: dict[str, Any] = (
    body_schema(SendRcsMessageRequest)
    | SEND_SECURITY
    | {
        "parameters": [
            {
                "name": IDEMPOTENCY_KEY,
                "in": "header",
                "required": False,
                "description": _IDEMPOTENCY_KEY_DOC,
                "schema": {
                    "anyOf": [{"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX}, {"type": "null"}],
                    "title": IDEMPOTENCY_KEY,
                    "description": _IDEMPOTENCY_KEY_DOC,
                },
            }
        ]
    }
)


@router.post(
    "/messages/rcs/send",
    response_model=MessageResponse,
    responses={422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    summary="Send one RCS message (optionally with an SMS alternative)",
    openapi_extra=_SEND_DOCS,
)
async def send_rcs(request: Request) -> Response:
    # Timed here, in the handler api.fast_lane calls (and FastAPI's route would): both ways count.
    started = time.perf_counter()
    try:
        response = await _send_rcs(request)
    except Exception:  # an error answer (a cancelled request gets none)
        _send_refused(time.perf_counter() - started)
        raise
    _send_accepted(time.perf_counter() - started)
    return response


_send_accepted, _send_refused = accept_timer("single")


async def _send_rcs(request: Request) -> Response:
    ctx = context_of(request)
    caller = await send_caller(request, ctx)
    idempotency_key = request.headers.get(IDEMPOTENCY_KEY)
    if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidInput(
            {IDEMPOTENCY_KEY: [MAX_CHARS.format(attribute=IDEMPOTENCY_KEY, max=IDEMPOTENCY_KEY_MAX)]}
        )
    try:
        body = await json_body(request)
        parsed = parse(
            SendRcsMessageRequest,
            body,
            max_cards=ctx.settings.max_cards,
            allow_private_callbacks=ctx.settings.webhooks_allow_private,
        )
    except DomainError:
        if isinstance(caller, TokenClaims):
            # Credentials are judged before the body, as on every other route.
            await auth.principal_for_token(ctx.db, ctx.tokens, _bearer(request))
        raise
    view = await ctx.sends.send(
        SendRequest(caller, parsed.to_domain(), request_key(request.scope["path"], body, idempotency_key))
    )
    # Serialised once here; returning the model would make FastAPI validate it a second time.
    answer = MessageResponse(data=MessageInfo(**info(view)))
    return Response(answer.model_dump_json(by_alias=True), media_type="application/json")


def _bearer(request: Request) -> str:
    token = bearer_token(request)
    assert token is not None
    return token


@router.get(
    "/messages",
    response_model=MessagesResponse,
    responses={422: {"model": ErrorBody}},
    summary="Messages (RCS and their SMS fallbacks) with status, cost and content",
)
async def list_messages(
    principal: CurrentPrincipal,
    ctx: Context,
    offset: PageOffset = 0,
    limit: PageLimit = 50,
    sort: Annotated[Literal["id", "phone", "delivered"], Query()] = "id",
    way: Annotated[Literal["asc", "desc"], Query()] = "asc",
    filter_id: Annotated[int | None, Query(alias="filter[id]", ge=1, le=INT64_MAX)] = None,
    filter_campaign_id: Annotated[int | None, Query(alias="filter[campaign_id]", ge=0, le=INT64_MAX)] = None,
    filter_reference_id: Annotated[str | None, Query(alias="filter[reference_id]", max_length=32)] = None,
    filter_from: Annotated[str | None, Query(alias="filter[from]", description="yyyy-mm-dd hh:mm:ss")] = None,
    filter_to: Annotated[
        str | None, Query(alias="filter[to]", description="yyyy-mm-dd hh:mm:ss; default now")
    ] = None,
) -> Response:
    views, total = await message_queries.list_messages(
        ctx.db,
        ctx.clock,
        account_id=principal.account_id,
        where=message_queries.MessageFilter(
            id=filter_id,
            campaign_id=filter_campaign_id,
            reference_id=filter_reference_id,
            created_from=filter_from or None,  # read in the account's time zone
            created_to=filter_to or None,
        ),
        sort=sort,
        descending=way == "desc",
        offset=offset,
        limit=limit,
    )
    # Serialised here; returning the model would have FastAPI validate every message once more.
    body = messages_json(views, total=total, offset=offset, limit=limit)
    return Response(body, media_type="application/json")
