"""Use cases of the dispatcher: claim due messages, record what the upstream said, apply reports,
expire what outlived its validity, and take back claims of workers that died. One transaction each;
no transaction is ever open while an upstream is called.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.connectors.base import (
    Accepted,
    ClickReport,
    NotCapable,
    OutboundMessage,
    Rejected,
    Report,
    StatusReport,
    SubmitResult,
    TryLater,
)
from rcsgate.domain.backoff import exponential_delay
from rcsgate.services.campaigns import pause_for_funds
from rcsgate.services.lifecycle import SmsPlan, enqueue_click_webhook, transition
from rcsgate.store import messages as store
from rcsgate.store import senders as sender_store
from rcsgate.store.db import Database
from rcsgate.store.tables import messages


def outbound(row: Row[Any]) -> OutboundMessage:
    return OutboundMessage(
        message_id=row.id,
        channel=row.type,
        phone=row.phone,
        sender=row.sender,
        content=json.loads(row.content),
        expires_at=row.expires_at,
    )


async def claim(db: Database, clock: Clock, *, limit: int, lease_seconds: float) -> list[OutboundMessage]:
    """Take due messages for sending. Campaign messages get their money reserved here; one that cannot
    be covered pauses its campaign (its messages wait, they do not fail). Agents' send rates hold across
    all workers because the bucket is a row updated in this same transaction."""
    now = clock.now()
    lock = not db.is_sqlite
    async with db.write() as conn:
        candidates = await store.due_candidates(conn, now=now, limit=limit, skip_locked=lock)
        if not candidates:
            return []
        demand: dict[int, int] = {}
        for row in candidates:
            if row.agent_id is not None:
                demand[row.agent_id] = demand.get(row.agent_id, 0) + 1
        allowance = await sender_store.take_send_tokens(conn, demand=demand, now=now, lock=lock)
        funds: dict[int, int] = {}
        reservations: dict[int, list[tuple[int, int]]] = {}
        paused: set[int] = set()
        chosen: list[int] = []
        for row in candidates:
            if row.campaign_id in paused:
                continue
            if row.agent_id in allowance:
                if allowance[row.agent_id] <= 0:
                    continue
                allowance[row.agent_id] -= 1
            if row.campaign_id is not None and row.reserved == 0 and row.price > 0:
                plan = SmsPlan.from_json(row.sms_alternative) if row.sms_alternative else None
                amount = row.price + (plan.cost if plan else 0)
                if row.account_id not in funds:
                    funds[row.account_id] = await store.available_funds(conn, row.account_id, lock=lock)
                if amount > funds[row.account_id]:
                    await pause_for_funds(conn, campaign_id=row.campaign_id)
                    paused.add(row.campaign_id)
                    continue
                funds[row.account_id] -= amount
                reservations.setdefault(row.account_id, []).append((row.id, amount))
            chosen.append(row.id)
        for account_id, items in reservations.items():
            await store.reserve_many(conn, account_id=account_id, items=items, now=now)
        rows = await store.mark_sending(
            conn, ids=chosen, now=now, lease_until=now + timedelta(seconds=lease_seconds)
        )
    return [outbound(r) for r in rows]


async def record_submit(
    db: Database, clock: Clock, *, message: OutboundMessage, result: SubmitResult, upstream: str
) -> None:
    await record_submits(db, clock, outcomes=[(message, result)], upstream=upstream)


async def record_submits(
    db: Database, clock: Clock, *, outcomes: list[tuple[OutboundMessage, SubmitResult]], upstream: str
) -> None:
    """Record what the upstream answered for a batch of messages, in one transaction."""
    now = clock.now()
    async with db.write() as conn:
        for message, result in outcomes:
            msg = await store.get(conn, message.message_id, for_update=not db.is_sqlite)
            if msg is None or msg.status != "sending":
                continue  # a report got there first, or the claim lapsed and another worker owns it
            await _record_one(conn, msg, result, upstream, now)


async def _record_one(
    conn: AsyncConnection, msg: Row[Any], result: SubmitResult, upstream: str, now: datetime
) -> None:
    match result:
        case Accepted(upstream_id=upstream_id):
            await transition(
                conn,
                msg,
                "sent",
                now,
                sent_at=now,
                upstream=upstream,
                upstream_id=upstream_id,
                lease_until=None,
                due_at=msg.expires_at,
            )
        case NotCapable(reason=reason):
            await transition(conn, msg, "undelivered", now, reason=reason, upstream=upstream)
        case Rejected(reason=reason):
            await transition(
                conn, msg, "failed", now, reason="rejected", detail=reason[:200], upstream=upstream
            )
        case TryLater(error=error):
            retry_at = now + timedelta(seconds=exponential_delay(msg.attempts))
            if retry_at >= msg.expires_at:
                await transition(conn, msg, "expired", now, reason="upstream_unavailable", detail=error[:200])
            else:
                await transition(
                    conn,
                    msg,
                    "accepted",
                    now,
                    detail=f"retry: {error}"[:200],
                    due_at=retry_at,
                    lease_until=None,
                )


async def apply_report(db: Database, clock: Clock, report: Report) -> bool:
    """Apply one upstream report; False when it changes nothing (late, duplicate, or unknown message)."""
    now = clock.now()
    async with db.write() as conn:
        msg = await store.get(conn, report.message_id, for_update=not db.is_sqlite)
        if msg is None:
            return False
        if isinstance(report, ClickReport):
            if msg.type != "rcs":
                return False
            await enqueue_click_webhook(
                conn, msg, text=report.text, postback=report.postback_data, at=report.at, now=now
            )
            return True
        assert isinstance(report, StatusReport)
        at = report.at
        if report.status == "delivered":
            if msg.status not in ("sending", "sent"):
                return False
            return await transition(conn, msg, "delivered", now, delivered_at=at)
        if report.status == "read":
            if msg.status in ("sending", "sent"):
                # A read report implies delivery; apply both, in order.
                if not await transition(conn, msg, "delivered", now, delivered_at=at):
                    return False
                msg = await store.get(conn, report.message_id)
                assert msg is not None
            if msg.status != "delivered":
                return False
            return await transition(conn, msg, "read", now, read_at=at)
        if msg.status not in ("sending", "sent"):
            return False
        return await transition(conn, msg, report.status, now, reason=report.status)


async def expire_due(db: Database, clock: Clock, *, limit: int = 500) -> int:
    now = clock.now()
    count = 0
    async with db.write() as conn:
        for msg in await store.due_for_expiry(conn, now=now, limit=limit):
            if await transition(conn, msg, "expired", now, reason="validity"):
                count += 1
    return count


async def reclaim_lapsed(db: Database, clock: Clock, *, limit: int = 500) -> int:
    """Claims whose worker died: back to `accepted`, due now (the upstream de-duplicates by message id)."""
    now = clock.now()
    count = 0
    async with db.write() as conn:
        for row in await store.lapsed_leases(conn, now=now, limit=limit):
            result = await conn.execute(
                update(messages)
                .where(messages.c.id == row.id, messages.c.status == "sending", messages.c.lease_until <= now)
                .values(status="accepted", due_at=now, lease_until=None)
            )
            if result.rowcount == 1:
                await store.insert_event(
                    conn,
                    message_id=row.id,
                    from_status="sending",
                    status="accepted",
                    at=now,
                    detail="lease lapsed",
                )
                count += 1
    return count
