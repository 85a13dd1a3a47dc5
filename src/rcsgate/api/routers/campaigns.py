"""RCS campaigns: send to phones or contact lists, list, inspect, stop, resume."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request

from rcsgate.api.bodies import body_schema, json_body, parse, request_key
from rcsgate.api.campaign_schemas import (
    CampaignAlternativeChannels,
    CampaignDetailOut,
    CampaignDetailResponse,
    CampaignOut,
    CampaignResponse,
    CampaignsResponse,
    DetailAlternativeChannels,
    ShortStats,
    SmsDetailStats,
    SmsShortStats,
    StatusCounts,
)
from rcsgate.api.deps import INT64_MAX, Context, CurrentPrincipal, PageOffset
from rcsgate.api.rcs_requests import SendRcsCampaignGroupsRequest, SendRcsCampaignRequest
from rcsgate.api.schemas import ErrorBody, Meta, PageMeta
from rcsgate.domain.campaign_stats import ChannelCounts
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.money import format_units, from_units
from rcsgate.domain.timefmt import format_ts, parse_ts
from rcsgate.metrics.instruments import accept_timer
from rcsgate.services import campaigns
from rcsgate.services.accounts import get_account
from rcsgate.services.campaigns import CampaignView
from rcsgate.store.signals import CAMPAIGNS, DUE

router = APIRouter(prefix="/api/campaigns", tags=["RCS campaigns"], responses={401: {"model": ErrorBody}})

CampaignId = Annotated[int, Path(ge=1, le=INT64_MAX)]
# The campaign listing's page size starts at 30 in BSG's OpenAPI (15 elsewhere).
CampaignPageLimit = Annotated[
    int, Query(alias="page[limit]", ge=30, le=500, description="Items per page, 30 to 500.")
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", max_length=255, description="Same key and body again: the original answer."
    ),
]


def campaign_out(view: CampaignView) -> CampaignOut:
    tz = view.timezone
    rcs_counts, sms_counts = (
        (view.rcs_counts, view.sms_counts) if view.started else (ChannelCounts({}), ChannelCounts({}))
    )
    sms = ShortStats(delivered=sms_counts.delivered, sent=sms_counts.sent)
    return CampaignOut(
        id=view.id,
        name=view.name,
        sender=view.sender,
        status=view.status,
        message_type=view.message_type,
        start_at=format_ts(view.start_at, tz),
        real_start_at=format_ts(view.real_start_at, tz),
        finished_at=format_ts(view.finished_at, tz),
        created_at=format_ts(view.created_at, tz) or "",
        statistics=ShortStats(delivered=rcs_counts.delivered, sent=rcs_counts.sent),
        calculated_price=float(from_units(view.calculated_price_units)),
        currency=view.currency,
        alternative_channels=CampaignAlternativeChannels(sms=SmsShortStats(statistic=sms, statistics=sms)),
    )


async def _create(
    request: Request,
    principal: CurrentPrincipal,
    ctx: Context,
    model: type[SendRcsCampaignRequest] | type[SendRcsCampaignGroupsRequest],
    idempotency_key: str | None,
) -> CampaignResponse:
    started = time.perf_counter()
    try:
        response = await _accept_campaign(request, principal, ctx, model, idempotency_key)
    except Exception:  # an error answer (a cancelled request gets none)
        _campaign_refused(time.perf_counter() - started)
        raise
    _campaign_accepted(time.perf_counter() - started)
    return response


_campaign_accepted, _campaign_refused = accept_timer("campaign")


async def _accept_campaign(
    request: Request,
    principal: CurrentPrincipal,
    ctx: Context,
    model: type[SendRcsCampaignRequest] | type[SendRcsCampaignGroupsRequest],
    idempotency_key: str | None,
) -> CampaignResponse:
    body = await json_body(request)
    parsed = parse(
        model,
        body,
        max_cards=ctx.settings.max_cards,
        allow_private_callbacks=ctx.settings.webhooks_allow_private,
    )
    view = await campaigns.create_campaign(
        ctx.db,
        ctx.clock,
        principal=principal,
        send=parsed.to_domain(),
        key=request_key(request.url.path, body, idempotency_key),
        duplicate_window=ctx.settings.duplicate_window_seconds,
    )
    ctx.signals.poke(CAMPAIGNS)
    return CampaignResponse(data=campaign_out(view))


@router.post(
    "/rcs/send",
    response_model=CampaignResponse,
    responses={422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    summary="RCS campaign to up to 5000 phones",
    openapi_extra=body_schema(SendRcsCampaignRequest),
)
async def send_to_phones(
    request: Request, principal: CurrentPrincipal, ctx: Context, idempotency_key: IdempotencyKey = None
) -> CampaignResponse:
    return await _create(request, principal, ctx, SendRcsCampaignRequest, idempotency_key)


@router.post(
    "/rcs/send-groups",
    response_model=CampaignResponse,
    responses={422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    summary="RCS campaign to contact lists (union of their contacts, at most 5000)",
    openapi_extra=body_schema(SendRcsCampaignGroupsRequest),
)
async def send_to_groups(
    request: Request, principal: CurrentPrincipal, ctx: Context, idempotency_key: IdempotencyKey = None
) -> CampaignResponse:
    return await _create(request, principal, ctx, SendRcsCampaignGroupsRequest, idempotency_key)


@router.get(
    "",
    response_model=CampaignsResponse,
    responses={422: {"model": ErrorBody}},
    summary="The account's campaigns",
)
async def list_campaigns(
    principal: CurrentPrincipal,
    ctx: Context,
    offset: PageOffset = 0,
    limit: CampaignPageLimit = 50,
    sort: Annotated[Literal["id", "sender", "type", "date", "status"], Query()] = "id",
    way: Annotated[Literal["asc", "desc"], Query()] = "asc",
    filter_from: Annotated[str | None, Query(alias="filter[from]", description="created at or after")] = None,
    filter_to: Annotated[str | None, Query(alias="filter[to]", description="created at or before")] = None,
    filter_type: Annotated[
        str | None, Query(alias="filter[type]", pattern="^(sms|viber|rcs|whatsapp)$")
    ] = None,
    search_field: Annotated[Literal["sender", "taskname"] | None, Query(alias="search[field]")] = None,
    search_value: Annotated[str | None, Query(alias="search[value]", max_length=100)] = None,
) -> CampaignsResponse:
    tz = (await get_account(ctx.db, principal.account_id)).timezone
    bounds = {}
    errors: dict[str, list[str]] = {}
    for name, value in (("filter[from]", filter_from), ("filter[to]", filter_to)):
        if value:
            try:
                bounds[name] = parse_ts(value, tz)
            except ValueError:
                errors[name] = [f"The {name} does not match the format Y-m-d H:i:s."]
    if errors:
        raise InvalidInput(errors)
    views, total = await campaigns.list_campaigns(
        ctx.db,
        account_id=principal.account_id,
        created_from=bounds.get("filter[from]"),
        created_to=bounds.get("filter[to]"),
        message_type=filter_type,
        search_field=search_field,
        search_value=search_value,
        sort=sort,
        descending=way == "desc",
        offset=offset,
        limit=limit,
    )
    return CampaignsResponse(
        data=[campaign_out(v) for v in views],
        meta=Meta(page=PageMeta(total=total, offset=offset, limit=limit)),
    )


@router.get("/{campaign_id}", response_model=CampaignResponse, responses={404: {"model": ErrorBody}})
async def get_campaign(
    campaign_id: CampaignId, principal: CurrentPrincipal, ctx: Context
) -> CampaignResponse:
    view = await campaigns.get_campaign(ctx.db, account_id=principal.account_id, campaign_id=campaign_id)
    return CampaignResponse(data=campaign_out(view))


@router.get(
    "/{campaign_id}/detail",
    response_model=CampaignDetailResponse,
    responses={404: {"model": ErrorBody}},
    summary="Statistics for every status, totals and cost",
)
async def campaign_detail(
    campaign_id: CampaignId, principal: CurrentPrincipal, ctx: Context
) -> CampaignDetailResponse:
    view = await campaigns.get_campaign(
        ctx.db, account_id=principal.account_id, campaign_id=campaign_id, with_total=True
    )
    tz = view.timezone
    return CampaignDetailResponse(
        data=CampaignDetailOut(
            id=view.id,
            name=view.name,
            sender=view.sender,
            status=view.status,
            type=view.message_type,
            started_at=format_ts(view.start_at, tz),
            actual_start_at=format_ts(view.real_start_at, tz),
            finished_at=format_ts(view.finished_at, tz),
            created_at=format_ts(view.created_at, tz) or "",
            statistics=StatusCounts(**view.rcs_counts.detail()),
            alternative_channels=DetailAlternativeChannels(
                sms=SmsDetailStats(statistics=StatusCounts(**view.sms_counts.detail()))
            ),
            total_messages=view.rcs_counts.total + view.sms_counts.total,
            total_phones=view.total_phones,
            total_price=format_units(view.total_price_units),
            currency=view.currency,
        )
    )


@router.patch(
    "/{campaign_id}/stop",
    response_model=CampaignResponse,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Stop a scheduled, sending, paused or moderated campaign; its unsent messages fail, uncharged",
)
async def stop(campaign_id: CampaignId, principal: CurrentPrincipal, ctx: Context) -> CampaignResponse:
    view = await campaigns.stop_campaign(
        ctx.db, ctx.clock, account_id=principal.account_id, campaign_id=campaign_id
    )
    return CampaignResponse(data=campaign_out(view))


@router.patch(
    "/{campaign_id}/resume",
    response_model=CampaignResponse,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="rcsgate addition: continue a campaign paused for lack of funds (after a top-up)",
)
async def resume(campaign_id: CampaignId, principal: CurrentPrincipal, ctx: Context) -> CampaignResponse:
    view = await campaigns.resume_campaign(
        ctx.db, ctx.clock, account_id=principal.account_id, campaign_id=campaign_id
    )
    ctx.signals.poke(DUE)
    return CampaignResponse(data=campaign_out(view))
