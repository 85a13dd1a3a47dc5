"""Use cases of the dispatcher: claim due messages, record what the upstream said, apply reports,
expire what outlived its validity, and take back claims of workers that died. One transaction each;
no transaction is ever open while an upstream is called.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
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
    SubmitResult,
    TryLater,
)
from rcsgate.domain.backoff import exponential_delay
from rcsgate.services.campaigns import pause_for_funds
from rcsgate.services.lifecycle import Msg, SmsPlan, Unit, enqueue_click_webhook, transition, unit_of_work
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
    async with db.write() as conn, unit_of_work(conn) as unit:
        rows = await store.get_many(conn, [m.message_id for m, _ in outcomes], for_update=not db.is_sqlite)
        for message, result in outcomes:
            msg = rows.get(message.message_id)
            if msg is None or msg.status != "sending":
                continue  # a report got there first, or the claim lapsed and another worker owns it
            await _record_one(unit, msg, result, upstream, now)


async def _record_one(unit: Unit, msg: Row[Any], result: SubmitResult, upstream: str, now: datetime) -> None:
    match result:
        case Accepted(upstream_id=upstream_id):
            await transition(
                unit,
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
            await transition(unit, msg, "undelivered", now, reason=reason, upstream=upstream)
        case Rejected(reason=reason):
            await transition(
                unit, msg, "failed", now, reason="rejected", detail=reason[:200], upstream=upstream
            )
        case TryLater(error=error):
            retry_at = now + timedelta(seconds=exponential_delay(msg.attempts))
            if retry_at >= msg.expires_at:
                await transition(unit, msg, "expired", now, reason="upstream_unavailable", detail=error[:200])
            else:
                await transition(
                    unit,
                    msg,
                    "accepted",
                    now,
                    detail=f"retry: {error}"[:200],
                    due_at=retry_at,
                    lease_until=None,
                )


async def apply_report(db: Database, clock: Clock, report: Report) -> bool:
    return bool(await apply_reports(db, clock, [report]))


async def apply_reports(db: Database, clock: Clock, reports: Sequence[Report]) -> int:
    """Apply a batch of upstream reports in one transaction; returns how many changed something
    (late, duplicate or unknown ones change nothing)."""
    now = clock.now()
    changed = 0
    async with db.write() as conn, unit_of_work(conn) as unit:
        found = await store.get_many(
            conn, sorted({r.message_id for r in reports}), for_update=not db.is_sqlite
        )
        rows = {mid: Msg.of(row) for mid, row in found.items()}
        for report in reports:
            msg = rows.get(report.message_id)
            if msg is None:
                continue
            moved = await _apply_one(unit, msg, report, now)
            if moved is not None:
                changed += 1
                rows[msg.id] = moved
    return changed


async def _apply_one(unit: Unit, msg: Msg, report: Report, now: datetime) -> Msg | None:
    """The message after the report, or None when the report changes nothing."""
    if isinstance(report, ClickReport):
        if msg.type != "rcs":
            return None
        await enqueue_click_webhook(
            unit, msg, text=report.text, postback=report.postback_data, at=report.at, now=now
        )
        return msg
    at = report.at
    if not _in_flight(msg):
        # Only a read may still follow a delivered message.
        if report.status == "read" and msg.status == "delivered":
            return await transition(unit, msg, "read", now, read_at=at)
        return None
    if msg.status == "sending":
        # The report overtook the submit's answer: the upstream has the message, so it was sent.
        # Record that first, so the history and the webhooks never skip `sent`.
        sent = await transition(unit, msg, "sent", now, sent_at=at)
        if sent is None:
            return None
        msg = sent
    if report.status == "delivered":
        return await transition(unit, msg, "delivered", now, delivered_at=at)
    if report.status == "read":
        # A read report implies delivery; apply both, in order.
        delivered = await transition(unit, msg, "delivered", now, delivered_at=at)
        if delivered is None:
            return None
        return await transition(unit, delivered, "read", now, read_at=at)
    return await transition(unit, msg, report.status, now, reason=report.status)


def _in_flight(msg: Msg) -> bool:
    """Whether the upstream may hold the message, so its delivery reports apply. That includes a
    message back in `accepted` after a submit whose answer never came (timeout, connection reset):
    the upstream may have taken it all the same, and then its report is the only word we get, since
    a resubmission of the same id is answered as a duplicate and produces no new reports."""
    return msg.status in ("sending", "sent") or (msg.status == "accepted" and msg.attempts > 0)


async def expire_due(db: Database, clock: Clock, *, limit: int = 500) -> int:
    now = clock.now()
    count = 0
    async with db.write() as conn, unit_of_work(conn) as unit:
        for msg in await store.due_for_expiry(conn, now=now, limit=limit):
            if await transition(unit, msg, "expired", now, reason="validity"):
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
