"""Use cases of the dispatcher: claim due messages, record what the upstream said, apply reports,
expire what outlived its validity, and take back claims of workers that died. One transaction each;
no transaction is ever open while an upstream is called.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Row

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
from rcsgate.services.lifecycle import enqueue_click_webhook, transition
from rcsgate.store import messages as store
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
    now = clock.now()
    async with db.write() as conn:
        rows = await store.claim_due(
            conn,
            now=now,
            lease_until=now + timedelta(seconds=lease_seconds),
            limit=limit,
            skip_locked=not db.is_sqlite,
        )
    return [outbound(r) for r in rows]


async def record_submit(
    db: Database, clock: Clock, *, message: OutboundMessage, result: SubmitResult, upstream: str
) -> None:
    now = clock.now()
    async with db.write() as conn:
        msg = await store.get(conn, message.message_id, for_update=not db.is_sqlite)
        if msg is None or msg.status != "sending":
            return  # a report got there first, or the claim lapsed and another worker owns it
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
                    await transition(
                        conn, msg, "expired", now, reason="upstream_unavailable", detail=error[:200]
                    )
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
