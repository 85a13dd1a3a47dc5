"""Queries on messages and their events.

Every status change is an UPDATE guarded by the old status (compare-and-set) plus its event row,
in the caller's transaction: ``move`` for one message, store/pipeline.py's ``move_many`` (and the
claim, ``mark_sending``) for a batch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.message_states import can_move
from rcsgate.store.bulk import in_values
from rcsgate.store.pipeline import EXPIRING, OUTBOUND_COLUMNS
from rcsgate.store.tables import message_events, messages


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


async def get(
    conn: AsyncConnection, message_id: int, *, account_id: int | None = None, for_update: bool = False
) -> Row[Any] | None:
    """The message; with ``account_id``, only if it is that account's."""
    query = select(messages).where(messages.c.id == message_id)
    if account_id is not None:
        query = query.where(messages.c.account_id == account_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


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


async def due_for_expiry(
    conn: AsyncConnection, *, now: datetime, limit: int, revoking: Collection[str] = ()
) -> list[Row[Any]]:
    """Messages past their validity, read in the expiry index. Sent messages of upstreams in
    ``revoking`` are left out: they are withdrawn upstream first (``claim_for_revocation``)."""
    query = select(messages).where(EXPIRING, messages.c.expires_at <= now)
    if revoking:
        query = query.where(
            or_(
                messages.c.status == "accepted",
                messages.c.upstream.is_(None),
                messages.c.upstream.not_in(list(revoking)),
            )
        )
    return list(await conn.execute(query.order_by(messages.c.expires_at).limit(limit)))


async def claim_for_revocation(
    conn: AsyncConnection,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    revoking: Collection[str],
    holder: int | None = None,
) -> list[Row[Any]]:
    """Sent messages of upstreams in ``revoking`` past their validity, not already being withdrawn
    (their lease, set here, keeps another sweep away until the revoke's answer is recorded).

    Read in the expiry index, whose condition is stated for SQLite's planner (it does not infer it).
    `sent` is that condition less `accepted`, not `status = 'sent'`: a second equality on status made
    the status index look far more selective to a PostgreSQL with stale statistics, which then read
    every sent row (~37 ms a sweep at 60,000)."""
    if not revoking:
        return []
    query = (
        select(messages.c.id)
        .where(
            EXPIRING,
            messages.c.status != "accepted",
            messages.c.expires_at <= now,
            messages.c.upstream.in_(list(revoking)),
            or_(messages.c.lease_until.is_(None), messages.c.lease_until <= now),
        )
        .order_by(messages.c.expires_at)
        .limit(limit)
    )
    ids = [int(r.id) for r in await conn.execute(query)]
    if not ids:
        return []
    result = await conn.execute(
        update(messages)
        .where(messages.c.id.in_(ids), messages.c.status == "sent")
        .values(lease_until=lease_until, holder_id=holder)
        .returning(*OUTBOUND_COLUMNS, messages.c.upstream)
    )
    return list(result)


async def sms_children(conn: AsyncConnection, parent_ids: list[int]) -> dict[int, list[int]]:
    if not parent_ids:
        return {}
    rows = await conn.execute(
        select(messages.c.parent_id, messages.c.id)
        .where(in_values(conn, messages.c.parent_id, parent_ids))
        .order_by(messages.c.id)
    )
    children: dict[int, list[int]] = {}
    for r in rows:
        children.setdefault(int(r.parent_id), []).append(int(r.id))
    return children


async def events_of(conn: AsyncConnection, message_id: int) -> list[Row[Any]]:
    """The message's status changes, oldest first."""
    query = (
        select(message_events)
        .where(message_events.c.message_id == message_id)
        .order_by(message_events.c.at, message_events.c.id)
    )
    return list(await conn.execute(query))


async def hold(conn: AsyncConnection, message_id: int, *, until: datetime) -> None:
    """Keep the sweep away from a sent message until ``until`` (a revoke to retry or answered). No
    holder any more: this wait is no process's claim, and outlives the one that set it."""
    await conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.status == "sent")
        .values(lease_until=until, holder_id=None)
    )


async def free_revocations(conn: AsyncConnection, *, holders: Sequence[int], now: datetime) -> int:
    """Revokes claimed by dead ``holders`` may be claimed again at once. Reads the `sent` rows (the
    status index), which only happens after a holder died."""
    if not holders:
        return 0
    result = await conn.execute(
        update(messages)
        .where(
            messages.c.status == "sent",
            in_values(conn, messages.c.holder_id, holders),
            messages.c.lease_until > now,
        )
        .values(lease_until=None, holder_id=None)
    )
    return int(result.rowcount or 0)


async def owed_reports(conn: AsyncConnection, *, upstream: str) -> list[Row[Any]]:
    """Messages an upstream accepted that still await a report from it: sent ones, and delivered RCS
    messages (a read may follow)."""
    query = (
        select(*OUTBOUND_COLUMNS, messages.c.status, messages.c.sent_at, messages.c.created_at)
        .where(
            messages.c.upstream == upstream,
            or_(
                messages.c.status == "sent", and_(messages.c.status == "delivered", messages.c.type == "rcs")
            ),
        )
        .order_by(messages.c.id)
    )
    return list(await conn.execute(query))
