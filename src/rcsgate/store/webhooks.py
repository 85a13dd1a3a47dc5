"""Queries on the webhook outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.tables import accounts, webhook_deliveries

_older = webhook_deliveries.alias("older")


async def claim_due(
    conn: AsyncConnection, *, now: datetime, lease_until: datetime, limit: int, skip_locked: bool
) -> list[tuple[Row[Any], str]]:
    """Due pending deliveries (with their account's signing secret), oldest first, skipping any whose message still has an older one pending:
    a receiver sees each message's callbacks in the order they were created."""
    blocked = exists().where(
        and_(
            _older.c.message_id == webhook_deliveries.c.message_id,
            _older.c.status == "pending",
            _older.c.id < webhook_deliveries.c.id,
        )
    )
    query = (
        select(webhook_deliveries.c.id)
        .where(
            webhook_deliveries.c.status == "pending",
            webhook_deliveries.c.next_attempt_at <= now,
            ~blocked,
        )
        .order_by(webhook_deliveries.c.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True, of=webhook_deliveries)
    ids = [r.id for r in await conn.execute(query)]
    if not ids:
        return []
    # Pushing next_attempt_at to the lease end keeps other senders off while this one works.
    result = await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id.in_(ids), webhook_deliveries.c.status == "pending")
        .values(next_attempt_at=lease_until, attempts=webhook_deliveries.c.attempts + 1)
        .returning(*webhook_deliveries.c)
    )
    rows = list(result)
    secrets = await _secrets(conn, {int(r.account_id) for r in rows})
    return [(r, secrets.get(int(r.account_id), "")) for r in rows]


async def _secrets(conn: AsyncConnection, account_ids: set[int]) -> dict[int, str]:
    if not account_ids:
        return {}
    rows = await conn.execute(
        select(accounts.c.id, accounts.c.webhook_secret).where(accounts.c.id.in_(account_ids))
    )
    return {int(r.id): str(r.webhook_secret) for r in rows}


async def mark_delivered(
    conn: AsyncConnection, *, items: list[tuple[int, int | None]], now: datetime
) -> None:
    """(delivery id, receiver's status code) pairs, in one executemany."""
    if items:
        await conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == bindparam("did"))
            .values(
                status="delivered",
                delivered_at=now,
                last_status_code=bindparam("code"),
                last_error=None,
                next_attempt_at=None,
            ),
            [{"did": did, "code": code} for did, code in items],
        )


async def mark_retry(
    conn: AsyncConnection,
    *,
    delivery_id: int,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime,
) -> None:
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(last_status_code=status_code, last_error=error, next_attempt_at=next_attempt_at)
    )


async def mark_failed(
    conn: AsyncConnection, *, delivery_id: int, status_code: int | None, error: str | None
) -> None:
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(status="failed", last_status_code=status_code, last_error=error, next_attempt_at=None)
    )
