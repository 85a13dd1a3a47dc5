"""Use cases of the dispatcher: claim due messages, record what the upstream said, apply reports,
expire what outlived its validity, and take back claims of workers that died. One transaction each;
no transaction is ever open while an upstream is called.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, assert_never

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.connectors.base import (
    Accepted,
    AlreadyDelivered,
    ClickReport,
    NotCapable,
    OutboundMessage,
    Rejected,
    Report,
    Revoked,
    RevokeResult,
    SubmitResult,
    TryLater,
)
from rcsgate.domain.backoff import exponential_delay
from rcsgate.services.campaigns import pause_for_funds
from rcsgate.services.lifecycle import Moves, Msg, SmsPlan, unit_of_work
from rcsgate.store import holders, pipeline
from rcsgate.store import messages as store
from rcsgate.store import senders as sender_store
from rcsgate.store import webhooks as webhook_store
from rcsgate.store.db import Database


def outbound(row: Row[Any], contents: dict[str, Any] | None = None) -> OutboundMessage:
    """The message as a connector takes it. ``contents`` caches decoded content within a batch: a
    campaign's messages share theirs (connectors only read it)."""
    if contents is None:
        content = json.loads(row.content)
    else:
        content = contents.get(row.content)
        if content is None:
            content = contents[row.content] = json.loads(row.content)
    return OutboundMessage(
        message_id=row.id,
        channel=row.type,
        phone=row.phone,
        sender=row.sender,
        content=content,
        expires_at=row.expires_at,
        agent_id=row.agent_id,
        account_id=row.account_id,
        attempts=row.attempts,
    )


async def claim(
    db: Database,
    clock: Clock,
    *,
    limit: int,
    lease_seconds: float,
    sms: bool = True,
    holder: int | None = None,
) -> list[OutboundMessage]:
    """Take due messages for sending, claimed by ``holder`` (dispatch/liveness.py). Campaign messages
    get their money reserved here; one that cannot be covered pauses its campaign (its messages wait,
    they do not fail). Agents' send rates hold across all workers because the bucket is a row updated
    in this same transaction."""
    now = clock.now()
    lock = not db.is_sqlite
    async with db.write() as conn:
        candidates = await pipeline.due_candidates(conn, now=now, limit=limit, skip_locked=lock, sms=sms)
        if not candidates:
            return []
        demand: dict[int, int] = {}
        for row in candidates:
            if row.agent_id is not None:
                demand[row.agent_id] = demand.get(row.agent_id, 0) + 1
        allowance = await sender_store.take_send_tokens(conn, demand=demand, now=now, lock=lock)
        wanted: dict[int, list[tuple[Row[Any], int]]] = {}
        for row in candidates:
            if row.agent_id in allowance:
                if allowance[row.agent_id] <= 0:
                    continue
                allowance[row.agent_id] -= 1
            wanted.setdefault(row.account_id, []).append((row, _to_reserve(row)))
        lease_until = now + timedelta(seconds=lease_seconds)
        rows = await _claim_covered(conn, wanted, now=now, lease_until=lease_until, holder=holder)
        if rows is None:
            chosen: list[int] = []
            amounts: dict[int, int] = {}
            for account_id, items in wanted.items():
                chosen += await _reserve(conn, account_id, items, amounts, now=now, lock=lock)
            rows = await pipeline.mark_sending(
                conn, ids=chosen, now=now, lease_until=lease_until, reserve=amounts, holder=holder
            )
    contents: dict[str, Any] = {}
    return [outbound(r, contents) for r in rows]


async def _claim_covered(
    conn: AsyncConnection,
    wanted: dict[int, list[tuple[Row[Any], int]]],
    *,
    now: datetime,
    lease_until: datetime,
    holder: int | None,
) -> list[Row[Any]] | None:
    """The usual case: every account covers all its messages. Claim them all, then reserve with one
    conditional UPDATE per account as the last statements, so an account row is locked (PostgreSQL)
    only from there to the commit. None, with nothing written, when some account falls short."""
    amounts = {row.id: amount for items in wanted.values() for row, amount in items if amount}
    savepoint = await conn.begin_nested()
    rows = await pipeline.mark_sending(
        conn,
        ids=[row.id for items in wanted.values() for row, _ in items],
        now=now,
        lease_until=lease_until,
        reserve=amounts,
        holder=holder,
    )
    for account_id, items in wanted.items():
        held = [(row.id, amount) for row, amount in items if amount]
        if held and not await pipeline.reserve_funds(conn, account_id=account_id, items=held, now=now):
            await savepoint.rollback()
            return None
    await savepoint.commit()
    return rows


def _to_reserve(row: Row[Any]) -> int:
    """What must be reserved now to send the message: a campaign message's price (and its SMS
    alternative's); single sends hold theirs since they were accepted."""
    if row.campaign_id is None or row.reserved != 0 or row.price <= 0:
        return 0
    plan = SmsPlan.from_json(row.sms_alternative) if row.sms_alternative else None
    return int(row.price + (plan.cost if plan else 0))


async def _reserve(
    conn: AsyncConnection,
    account_id: int,
    items: list[tuple[Row[Any], int]],
    amounts: dict[int, int],
    *,
    now: datetime,
    lock: bool,
) -> list[int]:
    """The ids of ``items`` whose money is now held on the account (``amounts``: how much, for
    mark_sending) or that need none, taken in order while the account's funds last, each campaign
    paused at its first message that does not fit."""
    funds = await pipeline.available_funds(conn, account_id, lock=lock)
    paused: set[int] = set()
    chosen: list[int] = []
    fitting: list[tuple[int, int]] = []
    for row, amount in items:
        if row.campaign_id in paused:
            continue
        if amount > funds:
            await pause_for_funds(conn, campaign_id=row.campaign_id)
            paused.add(row.campaign_id)
            continue
        funds -= amount
        if amount:
            fitting.append((row.id, amount))
        chosen.append(row.id)
    if fitting:
        await pipeline.reserve_funds(conn, account_id=account_id, items=fitting, now=now, checked=True)
        amounts.update(fitting)
    return chosen


# A submitted message, the upstream's answer, and the name of the connector that gave it.
Outcome = tuple[OutboundMessage, SubmitResult, str]


async def record_submit(
    db: Database, clock: Clock, *, message: OutboundMessage, result: SubmitResult, upstream: str
) -> None:
    await record(db, clock, outcomes=[(message, result, upstream)])


@dataclass(frozen=True, slots=True)
class Applied:
    changed: int  # reports that changed something (late, duplicate or unknown ones change nothing)
    fallbacks: int  # SMS fallbacks created, due to be sent


async def record(
    db: Database,
    clock: Clock,
    *,
    outcomes: Sequence[Outcome] = (),
    reports: Sequence[Report] = (),
    mine: Collection[int] | None = None,
) -> Applied:
    """Record what the upstreams said, in one transaction: their answers to submits, then their reports.
    A message's steps become one compare-and-set (lifecycle.Moves), so a submit answered at once
    whose delivery and read reports came along is one write of the message, not three. With
    ``mine`` (the caller's claim holder ids), answers to claims another holder has taken over since
    are left out."""
    async with db.write() as conn:
        return await record_in(
            conn, clock, outcomes=outcomes, reports=reports, lock=not db.is_sqlite, mine=mine
        )


async def record_in(
    conn: AsyncConnection,
    clock: Clock,
    *,
    outcomes: Sequence[Outcome] = (),
    reports: Sequence[Report] = (),
    lock: bool,
    mine: Collection[int] | None = None,
) -> Applied:
    """``record`` inside the caller's transaction."""
    now = clock.now()
    changed = 0
    async with unit_of_work(conn) as unit:
        ids = sorted({m.message_id for m, _, _ in outcomes} | {r.message_id for r in reports})
        found = await pipeline.states(conn, ids, for_update=lock)
        rows = {mid: Msg.of(row) for mid, row in found.items()}
        moves = Moves(unit)
        for message, result, name in outcomes:
            msg = rows.get(message.message_id)
            if msg is None or msg.status != "sending":
                continue  # a report got there first, or the claim lapsed and another worker owns it
            if mine is not None and msg.holder_id is not None and msg.holder_id not in mine:
                continue  # this process was taken for dead and another holder claimed the message
            rows[msg.id] = await _record_one(moves, msg, result, name, now)
        for report in reports:
            msg = rows.get(report.message_id)
            if msg is None:
                continue
            moved = await _apply_one(moves, msg, report, now)
            if moved is not None:
                changed += 1
                rows[msg.id] = moved
        await moves.write()
    return Applied(changed, unit.fallbacks)


async def _record_one(moves: Moves, msg: Msg, result: SubmitResult, upstream: str, now: datetime) -> Msg:
    match result:
        case Accepted(upstream_id=upstream_id):
            return await moves.move(
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
            return await moves.move(msg, "undelivered", now, reason=reason, upstream=upstream)
        case Rejected(reason=reason, code=code):
            return await moves.move(msg, "failed", now, reason=code, detail=reason[:200], upstream=upstream)
        case TryLater(error=error):
            retry_at = now + timedelta(seconds=exponential_delay(msg.attempts))
            if retry_at >= msg.expires_at:
                return await moves.move(
                    msg, "expired", now, reason="upstream_unavailable", detail=error[:200]
                )
            return await moves.move(
                msg,
                "accepted",
                now,
                detail=f"retry: {error}"[:200],
                due_at=retry_at,
                lease_until=None,
            )
        case _:
            assert_never(result)


async def apply_report(db: Database, clock: Clock, report: Report) -> bool:
    return bool(await apply_reports(db, clock, [report]))


async def apply_reports(db: Database, clock: Clock, reports: Sequence[Report]) -> int:
    """Apply a batch of upstream reports in one transaction; returns how many changed something."""
    return (await record(db, clock, reports=reports)).changed


async def _apply_one(moves: Moves, msg: Msg, report: Report, now: datetime) -> Msg | None:
    """The message after the report, or None when the report changes nothing."""
    if isinstance(report, ClickReport):
        if msg.type != "rcs":
            return None
        moves.click(msg, text=report.text, postback=report.postback_data, at=report.at, now=now)
        return msg
    at = report.at
    if not _in_flight(msg):
        # Only a read may still follow a delivered message.
        if report.status == "read" and msg.status == "delivered":
            return await moves.move(msg, "read", now, read_at=at)
        return None
    if msg.status in ("sending", "accepted"):
        # The report overtook the submit's answer (or the answer was lost, and the message waits for
        # its retry): the upstream has the message, so it was sent. Record that first, so the
        # history and the webhooks never skip `sent`.
        extra = {"upstream": report.upstream} if report.upstream else {}
        msg = await moves.move(msg, "sent", now, sent_at=at, lease_until=None, **extra)
    if report.status == "delivered":
        return await moves.move(msg, "delivered", now, delivered_at=at)
    if report.status == "read":
        # A read report implies delivery; apply both, in order.
        delivered = await moves.move(msg, "delivered", now, delivered_at=at)
        return await moves.move(delivered, "read", now, read_at=at)
    return await moves.move(msg, report.status, now, reason=(report.reason or report.status)[:32])


def _in_flight(msg: Msg) -> bool:
    """Whether the upstream may hold the message, so its delivery reports apply. That includes a
    message back in `accepted` after a submit whose answer never came (timeout, connection reset):
    the upstream may have taken it all the same, and then its report is the only word we get, since
    a resubmission of the same id is answered as a duplicate and produces no new reports."""
    return msg.status in ("sending", "sent") or (msg.status == "accepted" and msg.attempts > 0)


async def expire_due(db: Database, clock: Clock, *, limit: int = 500, revoking: Collection[str] = ()) -> int:
    """Messages past their validity end `expired` (and go to their SMS alternative), except sent
    ones of upstreams in ``revoking``: those are withdrawn first (claim_revocations)."""
    now = clock.now()
    async with db.write() as conn, unit_of_work(conn) as unit:
        moves = Moves(unit)
        for msg in await store.due_for_expiry(conn, now=now, limit=limit, revoking=revoking):
            await moves.move(msg, "expired", now, reason="validity")
        # Not locked: a report may move some first, and then the compare-and-set leaves them be.
        return len(await moves.write())


@dataclass(frozen=True, slots=True)
class Revocation:
    message: OutboundMessage
    upstream: str


async def claim_revocations(
    db: Database,
    clock: Clock,
    *,
    revoking: Collection[str],
    lease_seconds: float,
    limit: int = 200,
    holder: int | None = None,
) -> list[Revocation]:
    """Sent messages past their validity whose upstream must withdraw them before they expire."""
    now = clock.now()
    async with db.write() as conn:
        rows = await store.claim_for_revocation(
            conn,
            now=now,
            lease_until=now + timedelta(seconds=lease_seconds),
            limit=limit,
            revoking=revoking,
            holder=holder,
        )
    contents: dict[str, Any] = {}
    return [Revocation(outbound(r, contents), r.upstream) for r in rows]


# How long a revoke that could not be made waits before it is tried again, and how long a message
# the upstream says it delivered waits for that delivery report before it is asked again.
REVOKE_RETRY_SECONDS = 30.0
DELIVERED_WAIT_SECONDS = 24 * 3600.0


async def record_revocations(
    db: Database, clock: Clock, results: Sequence[tuple[Revocation, RevokeResult]]
) -> Applied:
    """Withdrawn messages end `expired` (with their SMS alternative); one the upstream had already
    delivered stays `sent` for the delivery report that follows (no SMS, no release); a revoke that
    failed is tried again later."""
    now = clock.now()
    async with db.write() as conn, unit_of_work(conn) as unit:
        ids = sorted(r.message.message_id for r, _ in results)
        rows = {
            mid: Msg.of(row)
            for mid, row in (await pipeline.states(conn, ids, for_update=not db.is_sqlite)).items()
        }
        moves = Moves(unit)
        for revocation, result in results:
            msg = rows.get(revocation.message.message_id)
            if msg is None or msg.status != "sent":
                continue  # a delivery report came first: nothing to withdraw
            match result:
                case Revoked():
                    await moves.move(
                        msg, "expired", now, reason="validity", detail="revoked upstream", lease_until=None
                    )
                case AlreadyDelivered():
                    await store.hold(conn, msg.id, until=now + timedelta(seconds=DELIVERED_WAIT_SECONDS))
                    unit.event(msg.id, "sent", "sent", now, "revoke refused: already delivered")
                case TryLater(error=error):
                    await store.hold(conn, msg.id, until=now + timedelta(seconds=REVOKE_RETRY_SECONDS))
                    unit.event(msg.id, "sent", "sent", now, f"revoke failed: {error}"[:200])
        await moves.write()
    return Applied(len(results), unit.fallbacks)


async def reclaim_lapsed(db: Database, clock: Clock, *, limit: int = 500) -> int:
    """Claims whose worker died: back to `accepted`, due now (the upstream de-duplicates by message id)."""
    now = clock.now()
    async with db.write() as conn:
        return await pipeline.reclaim_lapsed(conn, now=now, limit=limit)


@dataclass(frozen=True, slots=True)
class Reaped:
    holders: int  # dead holders forgotten
    messages: int  # messages back to `accepted`
    revocations: int  # revokes that may be claimed again
    webhooks: int  # deliveries due again
    # When the first of the other holders will be dead if it beats no more (None: there is none), so
    # that the sweep can look right then rather than up to an idle wait later.
    next_death: datetime | None = None


async def reclaim_dead(
    db: Database,
    clock: Clock,
    *,
    dead_seconds: float,
    alive: Collection[int] = (),
    all_others: bool = False,
) -> Reaped:
    """Claims of holders whose last beat is older than ``dead_seconds`` (dispatch/liveness.py), or of
    every holder but ``alive`` with ``all_others`` (embedded mode: one process owns an SQLite
    database's work, so any other holder is a dead predecessor): messages back to `accepted` with
    their events, revokes and webhook deliveries claimable again at once; the holders' rows deleted,
    so a holder that was only slow learns at its next beat that its claims are gone. A read first:
    nearly always nobody is dead, and then no write transaction is opened."""
    now = clock.now()
    before = now - timedelta(seconds=dead_seconds)
    async with db.read() as conn:
        others = [(hid, beat) for hid, beat in await holders.beats(conn) if hid not in alive]
    dead = [hid for hid, beat in others if all_others or beat < before]
    if not dead:
        last = min((beat for _, beat in others), default=None)
        return Reaped(0, 0, 0, 0, None if last is None else last + timedelta(seconds=dead_seconds))
    async with db.write() as conn:
        # Deleted first and by the same condition: a beat that committed since the read keeps its
        # holder, and one not yet committed finds its row gone (the holder then stops its calls).
        dead = await holders.remove_dead(conn, beat_before=before, alive=alive, all_others=all_others)
        return Reaped(
            len(dead),
            await pipeline.reclaim_of_holders(conn, holders=dead, now=now),
            await store.free_revocations(conn, holders=dead, now=now),
            await webhook_store.free_claims(conn, holders=dead, now=now),
        )


async def owed_reports(db: Database, *, upstream: str) -> list[tuple[OutboundMessage, bool, datetime]]:
    """(message, delivered already, sent at) for each message ``upstream`` still owes a report."""
    async with db.read() as conn:
        rows = await store.owed_reports(conn, upstream=upstream)
    contents: dict[str, Any] = {}
    return [(outbound(r, contents), r.status == "delivered", r.sent_at or r.created_at) for r in rows]
