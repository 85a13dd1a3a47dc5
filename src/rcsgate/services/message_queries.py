"""`GET /api/messages`: an account's messages (RCS and their SMS fallbacks), filtered, sorted, paged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.engine import Row

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.message_view import MessageView, shown_amount
from rcsgate.domain.records import Account
from rcsgate.services.lifecycle import SmsPlan
from rcsgate.store import accounts as account_store
from rcsgate.store import messages as store
from rcsgate.store.db import Database
from rcsgate.store.tables import messages

MAX_PERIOD = timedelta(days=92)  # "3 months"

Sort = Literal["id", "phone", "delivered"]


@dataclass(frozen=True, slots=True)
class MessageFilter:
    id: int | None = None
    campaign_id: int | None = None
    reference_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def check_period(
    created_from: datetime | None, created_to: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    errors: dict[str, list[str]] = {}
    to = created_to or now
    if created_to is not None and created_to > now:
        errors["filter[to]"] = ["Future dates are not allowed."]
    if created_from is not None and created_from > now:
        errors["filter[from]"] = ["Future dates are not allowed."]
    start = created_from or to - MAX_PERIOD
    if not errors and start > to:
        errors["filter[from]"] = ["The filter[from] must be a date before filter[to]."]
    if not errors and to - start > MAX_PERIOD:
        errors["filter[from]"] = ["The period may not be longer than 3 months."]
    if errors:
        raise InvalidInput(errors)
    return start, to


def view(row: Row[Any], account: Account, children: list[int]) -> MessageView:
    content = json.loads(row.content)
    plan = SmsPlan.from_json(row.sms_alternative) if row.sms_alternative else None
    return MessageView(
        id=row.id,
        reference_id=row.reference_id,
        type=row.type,
        phone=row.phone,
        status=row.status,
        validity_seconds=row.validity_seconds,
        amount_units=shown_amount(status=row.status, price=row.price, charged=row.charged),
        currency=account.currency,
        sender=row.sender,
        created_at=row.created_at,
        sent_at=row.sent_at,
        delivered_at=row.delivered_at,
        timezone=account.timezone,
        campaign_id=row.campaign_id,
        country=row.country,
        content=content,
        parts=row.parts,
        fallback_parts=plan.parts if plan else None,
        fallback_ids=tuple(children),
    )


async def list_messages(
    db: Database,
    clock: Clock,
    *,
    account_id: int,
    where: MessageFilter,
    sort: Sort = "id",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[MessageView], int]:
    start, end = check_period(where.created_from, where.created_to, clock.now())
    conditions = [
        messages.c.account_id == account_id,
        messages.c.created_at >= start,
        messages.c.created_at <= end,
    ]
    if where.id is not None:
        conditions.append(messages.c.id == where.id)
    if where.campaign_id is not None:
        conditions.append(messages.c.campaign_id == where.campaign_id)
    if where.reference_id is not None:
        conditions.append(messages.c.reference_id == where.reference_id)
    column = {"id": messages.c.id, "phone": messages.c.phone, "delivered": messages.c.delivered_at}[sort]
    order = [column.desc(), messages.c.id.desc()] if descending else [column.asc(), messages.c.id.asc()]
    async with db.read() as conn:
        account = await account_store.get_account(conn, account_id)
        assert account is not None
        total = int(
            (await conn.execute(select(func.count()).select_from(messages).where(*conditions))).scalar_one()
        )
        rows = list(
            await conn.execute(
                select(messages).where(*conditions).order_by(*order).offset(offset).limit(limit)
            )
        )
        children = await store.sms_children(conn, [r.id for r in rows if r.sms_alternative])
    return [view(r, account, children.get(r.id, [])) for r in rows], total
