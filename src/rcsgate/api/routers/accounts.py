from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from rcsgate.api.deps import Context, CurrentPrincipal, PageLimit, PageOffset
from rcsgate.api.schemas import (
    BalanceOut,
    BalanceResponse,
    ErrorBody,
    SenderOut,
    SendersResponse,
    TariffOut,
    TariffsResponse,
)
from rcsgate.domain.timefmt import format_ts
from rcsgate.services import accounts, senders, tariffs

router = APIRouter(prefix="/api", tags=["Account"], responses={401: {"model": ErrorBody}})


@router.get("/accounts/balance", response_model=BalanceResponse, summary="Balance and credit limit")
async def balance(principal: CurrentPrincipal, ctx: Context) -> BalanceResponse:
    account = await accounts.get_account(ctx.db, principal.account_id)
    return BalanceResponse(
        data=BalanceOut(
            balance=float(account.balance), currency=account.currency, credit=float(account.credit_limit)
        )
    )


@router.get(
    "/accounts/tariff",
    response_model=TariffsResponse,
    responses={422: {"model": ErrorBody}},
    summary="The account's tariffs",
)
async def tariff_list(
    principal: CurrentPrincipal, ctx: Context, offset: PageOffset = 0, limit: PageLimit = 50
) -> TariffsResponse:
    items, total = await tariffs.account_tariffs(
        ctx.db, account_id=principal.account_id, offset=offset, limit=limit
    )
    return TariffsResponse(
        data=[
            TariffOut(id=t.id, name=t.name, code=t.code, is_active=t.is_active, is_default=t.is_default)
            for t in items
        ],
        total=total,
    )


@router.get(
    "/senders",
    response_model=SendersResponse,
    responses={422: {"model": ErrorBody}},
    summary="Registered senders: SMS senders, or with type=rcs the RCS agents (an rcsgate addition)",
)
async def sender_list(
    principal: CurrentPrincipal,
    ctx: Context,
    type: Annotated[str, Query(pattern="^(sms|viber|rcs)$", description="sms, viber or rcs")],
) -> SendersResponse:
    account = await accounts.get_account(ctx.db, principal.account_id)
    tz = account.timezone
    items: list[SenderOut] = []
    if type == "sms":
        items = [
            SenderOut(
                id=s.id,
                status=s.status,
                country=s.country,
                sender=s.name,
                created_at=format_ts(s.created_at, tz) or "",
                is_default=s.is_default,
            )
            for s in await senders.list_senders(ctx.db, account_id=principal.account_id)
        ]
    elif type == "rcs":
        items = [
            SenderOut(
                id=a.id,
                status=a.status,
                country=a.country,
                sender=a.name,
                created_at=format_ts(a.created_at, tz) or "",
                is_default=False,
            )
            for a in await senders.list_agents(ctx.db, account_id=principal.account_id)
        ]
    return SendersResponse(data=items, total=len(items))
