"""Queries behind an account's webhook delivery log (the console's Developers screen)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.tables import messages, webhook_deliveries

_w = webhook_deliveries.c
SETTLED = ("delivered", "failed")


async def page(
    conn: AsyncConnection,
    *,
    account_id: int,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[Row[Any]]:
    """The account's deliveries, newest first, from before ``before_id`` (keyset paging)."""
    query = select(webhook_deliveries).where(_w.account_id == account_id)
    if status is not None:
        query = query.where(_w.status == status)
    if before_id is not None:
        query = query.where(_w.id < before_id)
    return list(await conn.execute(query.order_by(_w.id.desc()).limit(limit)))


async def get(conn: AsyncConnection, *, account_id: int, delivery_id: int) -> Row[Any] | None:
    query = select(webhook_deliveries).where(_w.id == delivery_id, _w.account_id == account_id)
    return (await conn.execute(query)).first()


async def for_message(conn: AsyncConnection, *, account_id: int, message_id: int) -> list[Row[Any]]:
    """The account's deliveries about one message, oldest first."""
    query = select(webhook_deliveries).where(_w.account_id == account_id, _w.message_id == message_id)
    return list(await conn.execute(query.order_by(_w.id)))


async def message_callback_url(conn: AsyncConnection, message_id: int) -> str | None:
    query = select(messages.c.callback_url).where(messages.c.id == message_id)
    value = (await conn.execute(query)).scalar_one_or_none()
    return str(value) if value else None


async def record_redelivery(
    conn: AsyncConnection,
    *,
    delivery_id: int,
    url: str,
    delivered: bool,
    status_code: int | None,
    error: str | None,
    now: datetime,
) -> bool:
    """One more attempt of a settled delivery: delivered now, or still where it was (delivered or
    failed) with this attempt's answer. False if the delivery is pending again meanwhile."""
    values: dict[str, Any] = {
        "url": url,
        "attempts": _w.attempts + 1,
        "last_status_code": status_code,
        "last_error": error,
    }
    if delivered:
        values.update(status="delivered", delivered_at=now)
    result = await conn.execute(
        update(webhook_deliveries).where(_w.id == delivery_id, _w.status.in_(SETTLED)).values(**values)
    )
    return bool(result.rowcount == 1)
