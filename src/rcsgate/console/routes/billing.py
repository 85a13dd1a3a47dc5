"""Billing: balance, credit and reserved funds; the ledger, page by page; the prices of the
account's tariffs per country and kind."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from rcsgate.api.deps import INT64_MAX
from rcsgate.console.auth import CurrentUser, db_of
from rcsgate.console.templating import render
from rcsgate.services import accounts, billing

router = APIRouter()


@router.get("/billing")
async def billing_page(
    request: Request,
    user: CurrentUser,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> HTMLResponse:
    db = db_of(request)
    account = await accounts.get_account(db, user.account_id)
    entries, next_before = await billing.ledger(db, account_id=user.account_id, before_id=before)
    tariffs = await billing.prices(db, account_id=user.account_id)
    return render(
        request,
        "billing.html",
        {
            "account": account,
            "entries": entries,
            "next_before": next_before,
            "before": before,
            "tariffs": tariffs,
            "kinds": billing.KINDS,
        },
    )
