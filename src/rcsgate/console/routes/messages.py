"""The messages screen: the log (the API's filters plus status, channel, phone and agent) and a
message's page (its content as the phone shows it, event timeline, price, SMS fallback, webhooks;
``services.message_detail``)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from rcsgate.api.deps import INT64_MAX
from rcsgate.console import message_log
from rcsgate.console.auth import CurrentUser, clock_of, db_of
from rcsgate.console.templating import render
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.message_states import STATUSES
from rcsgate.services import senders
from rcsgate.services.message_detail import message_detail

router = APIRouter()

MessageId = Annotated[int, Path(ge=1, le=INT64_MAX)]
Text = Annotated[str, Query(max_length=64)]


@router.get("/messages")
async def messages_page(
    request: Request,
    user: CurrentUser,
    id: Text = "",
    campaign_id: Text = "",
    reference_id: Text = "",
    created_from: Text = "",
    created_to: Text = "",
    status: Text = "",
    channel: Text = "",
    phone: Text = "",
    agent: Text = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HTMLResponse:
    db = db_of(request)
    where = message_log.LogFilter(
        id=id,
        campaign_id=campaign_id,
        reference_id=reference_id,
        created_from=created_from,
        created_to=created_to,
        status=status,
        channel=channel,
        phone=phone,
        agent=agent,
    )
    errors: dict[str, list[str]] = {}
    page = None
    try:
        page = await message_log.message_log(
            db, clock_of(request), account_id=user.account_id, where=where, offset=offset
        )
    except InvalidInput as exc:
        errors = exc.errors
    agents = await senders.list_agents(db, account_id=user.account_id)
    context = {
        "where": where,
        "page": page,
        "errors": errors,
        "statuses": STATUSES,
        "channels": message_log.CHANNELS,
        "agents": sorted({a.name for a in agents}),
        "query": where.query(),
    }
    return render(request, "messages/log.html", context, status_code=422 if errors else 200)


@router.get("/messages/{message_id}")
async def message_page(request: Request, user: CurrentUser, message_id: MessageId) -> HTMLResponse:
    page = await message_detail(db_of(request), account_id=user.account_id, message_id=message_id)
    hooks = [(w, _pretty(w.body)) for w in page.webhooks]
    return render(request, "messages/detail.html", {"m": page.view, "page": page, "hooks": hooks})


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body
