"""Queries on messages, their events, reservations and the webhook outbox.

Every status change goes through ``move``: an UPDATE guarded by the old status (compare-and-set)
plus its event row, in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.message_states import can_move
from rcsgate.store.tables import accounts, ledger_entries, message_events, messages


async def insert_message(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(insert(messages).values(**values).returning(messages.c.id))
    return int(result.scalar_one())


async def insert_event(
    conn: AsyncConnection,
    *,
    message_id: int,
    from_status: str | None,
    status: str,
    at: datetime,
    detail: str | None,
) -> None:
    await conn.execute(
        insert(message_events).values(
            message_id=message_id, from_status=from_status, status=status, at=at, detail=detail
        )
    )


async def get(conn: AsyncConnection, message_id: int, *, for_update: bool = False) -> Row[Any] | None:
    query = select(messages).where(messages.c.id == message_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def get_many(conn: AsyncConnection, ids: list[int], *, for_update: bool = False) -> dict[int, Row[Any]]:
    if not ids:
        return {}
    query = select(messages).where(messages.c.id.in_(ids)).order_by(messages.c.id)
    if for_update:
        query = query.with_for_update()
    return {int(r.id): r for r in await conn.execute(query)}


async def move(conn: AsyncConnection, *, message_id: int, old: str, new: str, **values: Any) -> bool:
    """Compare-and-set ``old`` → ``new`` (with ``values``); False, and nothing written, when the message is
    no longer ``old``. The caller records the event (lifecycle.Unit)."""
    if not can_move(old, new):
        raise ValueError(f"illegal transition {old} -> {new}")
    result = await conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.status == old)
        .values(status=new, **values)
    )
    return result.rowcount == 1


async def due_candidates(
    conn: AsyncConnection, *, now: datetime, limit: int, skip_locked: bool
) -> list[Row[Any]]:
    """Due `accepted` messages, single sends before campaign traffic, oldest first (locked on PostgreSQL)."""
    query = (
        select(
            messages.c.id,
            messages.c.account_id,
            messages.c.campaign_id,
            messages.c.agent_id,
            messages.c.price,
            messages.c.reserved,
            messages.c.sms_alternative,
        )
        .where(messages.c.status == "accepted", messages.c.due_at <= now)
        .order_by(messages.c.priority, messages.c.due_at, messages.c.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(await conn.execute(query))


async def mark_sending(
    conn: AsyncConnection, *, ids: list[int], now: datetime, lease_until: datetime
) -> list[Row[Any]]:
    if not ids:
        return []
    claimed = await conn.execute(
        update(messages)
        .where(messages.c.id.in_(ids), messages.c.status == "accepted")
        .values(status="sending", lease_until=lease_until, attempts=messages.c.attempts + 1)
        .returning(*messages.c)
    )
    rows = list(claimed)
    if rows:
        await conn.execute(
            insert(message_events),
            [
                {
                    "message_id": r.id,
                    "from_status": "accepted",
                    "status": "sending",
                    "at": now,
                    "detail": None,
                }
                for r in rows
            ],
        )
    return rows


async def available_funds(conn: AsyncConnection, account_id: int, *, lock: bool) -> int:
    query = select(accounts.c.balance + accounts.c.credit_limit - accounts.c.reserved).where(
        accounts.c.id == account_id
    )
    if lock:
        query = query.with_for_update()
    return int((await conn.execute(query)).scalar_one())


async def reserve_many(
    conn: AsyncConnection, *, account_id: int, items: list[tuple[int, int]], now: datetime
) -> None:
    """Reserve (message id, amount) pairs the caller checked against available_funds, in three statements."""
    if not items:
        return
    total = sum(amount for _, amount in items)
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(reserved=accounts.c.reserved + total)
        .returning(accounts.c.balance)
    )
    balance = int(result.scalar_one())
    await conn.execute(
        insert(ledger_entries),
        [
            {
                "account_id": account_id,
                "message_id": message_id,
                "kind": "reserve",
                "amount": amount,
                "balance_after": balance,
                "note": None,
                "created_at": now,
            }
            for message_id, amount in items
        ],
    )
    await conn.execute(
        update(messages).where(messages.c.id == bindparam("mid")).values(reserved=bindparam("amount")),
        [{"mid": message_id, "amount": amount} for message_id, amount in items],
    )


async def due_for_expiry(conn: AsyncConnection, *, now: datetime, limit: int) -> list[Row[Any]]:
    query = (
        select(messages)
        .where(messages.c.status.in_(("accepted", "sent")), messages.c.expires_at <= now)
        .order_by(messages.c.expires_at)
        .limit(limit)
    )
    return list(await conn.execute(query))


async def lapsed_leases(conn: AsyncConnection, *, now: datetime, limit: int) -> list[Row[Any]]:
    query = (
        select(messages.c.id)
        .where(messages.c.status == "sending", messages.c.lease_until <= now)
        .order_by(messages.c.lease_until)
        .limit(limit)
    )
    return list(await conn.execute(query))


async def sms_children(conn: AsyncConnection, parent_ids: list[int]) -> dict[int, list[int]]:
    if not parent_ids:
        return {}
    rows = await conn.execute(
        select(messages.c.parent_id, messages.c.id)
        .where(messages.c.parent_id.in_(parent_ids))
        .order_by(messages.c.id)
    )
    children: dict[int, list[int]] = {}
    for r in rows:
        children.setdefault(int(r.parent_id), []).append(int(r.id))
    return children
