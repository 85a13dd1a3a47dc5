"""Queries on the webhook outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, bindparam, literal_column, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.bulk import in_values
from rcsgate.store.tables import accounts, webhook_deliveries

# Ids per IN list: well under both engines' limits on bound parameters.
_CHUNK = 5000
_w = webhook_deliveries.c
# What a delivery attempt needs.
_SENT_COLUMNS = (
    _w.id,
    _w.account_id,
    _w.message_id,
    _w.url,
    _w.body,
    _w.webhook_id,
    _w.attempts,
    _w.holder_id,
)
# Written as the literal of the partial indexes' condition (tables.webhook_deliveries): with a bound
# parameter instead, neither SQLite nor a generic PostgreSQL plan could prove the index applies.
PENDING = _w.status == literal_column("'pending'")
# For rows already picked by id: the same condition in words no pending-only index answers, so the
# planner takes the primary key. PostgreSQL's row estimates for those small indexes lag far behind an
# outbox that grows by thousands of rows a second, and it had chosen to scan every pending row and
# test it against thousands of ids (~150 ms a claim) instead of looking the ids up.
NOT_SETTLED = _w.status.not_in(("delivered", "failed"))


async def claim_chains(
    conn: AsyncConnection,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    skip_locked: bool,
    holder: int | None = None,
) -> tuple[list[list[Row[Any]]], dict[int, str]]:
    """Take due pending deliveries as chains: each chain is the oldest pending delivery of a message
    followed by that message's later pending ones, in creation order, to be posted one after the
    other. A delivery is only ever taken with (or after) every older pending delivery of its
    message, so a receiver sees each message's callbacks in the order they were created.
    Returns the chains (at most ``limit`` deliveries in all) and the accounts' signing secrets.

    Which delivery is a message's oldest is decided here from the message's pending rows rather than
    by a correlated subquery, whose plan PostgreSQL gets badly wrong while the outbox grows faster
    than its statistics. Pushing next_attempt_at to the lease end keeps other senders off while this
    one works; a sender that dies leaves them to be taken again when the reaper finds its ``holder``
    dead (free_claims), or at the latest when the lease ends."""
    # Due deliveries in the order of the pending-due index; some wait behind an older delivery of
    # their message, so look at more than the limit.
    candidates = list(
        await conn.execute(
            select(_w.id, _w.message_id)
            .where(PENDING, _w.next_attempt_at <= now)
            .order_by(_w.next_attempt_at, _w.id)
            .limit(2 * limit)
        )
    )
    if not candidates:
        return [], {}
    message_ids = list(dict.fromkeys(int(c.message_id) for c in candidates if c.message_id is not None))
    pending = await _pending_of(conn, message_ids)
    chains: list[list[int]] = []
    room = limit
    for c in candidates:
        if room <= 0:
            break
        if c.message_id is None:
            chain = [int(c.id)]
        else:
            chain = _chain(pending.pop(int(c.message_id), []), now)[:room]
        if chain:
            chains.append(chain)
            room -= len(chain)
    if skip_locked:
        chains = await _lock(conn, chains, now=now)
    if not chains:
        return [], {}
    result = await conn.execute(
        update(webhook_deliveries)
        .where(in_values(conn, _w.id, [i for chain in chains for i in chain]), NOT_SETTLED)
        .values(next_attempt_at=lease_until, attempts=_w.attempts + 1, holder_id=holder)
        .returning(*_SENT_COLUMNS)
    )
    rows = {int(r.id): r for r in result}
    claimed = [[rows[i] for i in chain if i in rows] for chain in chains]
    claimed = [chain for chain in claimed if chain]
    secrets = await _secrets(conn, {int(chain[0].account_id) for chain in claimed})
    return claimed, secrets


async def _pending_of(conn: AsyncConnection, message_ids: list[int]) -> dict[int, list[Row[Any]]]:
    """Every pending delivery of the messages, in creation order."""
    pending: dict[int, list[Row[Any]]] = {}
    if not message_ids:
        return pending
    if conn.dialect.name == "postgresql":
        # One index lookup per message, whatever the planner believes about the pending rows' number
        # (see NOT_SETTLED): OFFSET 0 keeps it from turning the lateral subquery into a join that it
        # may answer by scanning them all.
        query: Any = text(
            """SELECT w.id, w.message_id, w.next_attempt_at
            FROM unnest(:ids) AS m(id)
            CROSS JOIN LATERAL (
                SELECT id, message_id, next_attempt_at FROM webhook_deliveries
                WHERE message_id = m.id AND status = 'pending' OFFSET 0
            ) AS w
            ORDER BY w.message_id, w.id"""
        ).bindparams(bindparam("ids", message_ids, type_=ARRAY(BigInteger)))
        query = query.columns(_w.id, _w.message_id, _w.next_attempt_at)
    else:
        query = (
            select(_w.id, _w.message_id, _w.next_attempt_at)
            .where(_w.message_id.in_(message_ids), PENDING)
            .order_by(_w.message_id, _w.id)
        )
    rows: list[Row[Any]] = list(await conn.execute(query))
    for r in rows:
        pending.setdefault(int(r.message_id), []).append(r)
    return pending


def _chain(pending: list[Row[Any]], now: datetime) -> list[int]:
    """A message's deliveries that may go now: its oldest pending one if due (not waiting for a
    retry, not leased to another sender), then the following ones up to the first not due."""
    chain: list[int] = []
    for r in pending:
        if r.next_attempt_at is None or r.next_attempt_at > now:
            break
        chain.append(int(r.id))
    return chain


async def _lock(conn: AsyncConnection, chains: list[list[int]], *, now: datetime) -> list[list[int]]:
    """PostgreSQL: lock the chains' rows, skipping those another sender holds; a row another sender
    took or settled meanwhile is locked in its latest version and left out here. A chain ends before
    its first row not had."""
    query = (
        select(_w.id, _w.status, _w.next_attempt_at)
        .where(in_values(conn, _w.id, [i for chain in chains for i in chain]))
        .with_for_update(skip_locked=True)
    )
    held = {
        int(r.id)
        for r in await conn.execute(query)
        if r.status == "pending" and r.next_attempt_at is not None and r.next_attempt_at <= now
    }
    kept: list[list[int]] = []
    for chain in chains:
        prefix: list[int] = []
        for i in chain:
            if i not in held:
                break
            prefix.append(i)
        if prefix:
            kept.append(prefix)
    return kept


async def _secrets(conn: AsyncConnection, account_ids: set[int]) -> dict[int, str]:
    if not account_ids:
        return {}
    rows = await conn.execute(
        select(accounts.c.id, accounts.c.webhook_secret).where(in_values(conn, accounts.c.id, account_ids))
    )
    return {int(r.id): str(r.webhook_secret) for r in rows}


async def mark_delivered(
    conn: AsyncConnection, *, items: Sequence[tuple[int, int | None]], now: datetime
) -> None:
    """(delivery id, receiver's status code) pairs: one statement per distinct code (nearly always
    just 200), not one per delivery."""
    by_code: dict[int | None, list[int]] = {}
    for did, code in items:
        by_code.setdefault(code, []).append(did)
    for code, ids in by_code.items():
        for start in range(0, len(ids), _CHUNK):
            await conn.execute(
                update(webhook_deliveries)
                .where(in_values(conn, _w.id, ids[start : start + _CHUNK]))
                .values(
                    status="delivered",
                    delivered_at=now,
                    last_status_code=code,
                    last_error=None,
                    next_attempt_at=None,
                )
            )


async def release(
    conn: AsyncConnection, *, ids: Sequence[int], now: datetime, holder: int | None = None
) -> None:
    """Deliveries claimed by ``holder`` but not attempted (one before them in their chain was not
    delivered, or the holder's beat was too old to post): due again, their claim's attempt not
    counted. They stay behind the older one still pending. One the reaper already freed (another
    sender may hold it now) is left alone."""
    if ids:
        held = _w.holder_id.is_(None) if holder is None else _w.holder_id == holder
        await conn.execute(
            update(webhook_deliveries)
            .where(in_values(conn, _w.id, ids), NOT_SETTLED, held)
            .values(next_attempt_at=now, attempts=_w.attempts - 1, holder_id=None)
        )


async def free_claims(conn: AsyncConnection, *, holders: Sequence[int], now: datetime) -> int:
    """Deliveries claimed by dead ``holders``: due again at once (their attempt counted: the POST may
    have reached the receiver). Reads the pending rows whose next attempt is still ahead, through
    the pending index; this only happens after a holder died."""
    if not holders:
        return 0
    result = await conn.execute(
        update(webhook_deliveries)
        .where(PENDING, _w.next_attempt_at > now, in_values(conn, _w.holder_id, holders))
        .values(next_attempt_at=now, holder_id=None)
    )
    return int(result.rowcount or 0)


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
        .where(_w.id == delivery_id)
        .values(
            last_status_code=status_code, last_error=error, next_attempt_at=next_attempt_at, holder_id=None
        )
    )


async def mark_failed(
    conn: AsyncConnection, *, delivery_id: int, status_code: int | None, error: str | None
) -> None:
    await conn.execute(
        update(webhook_deliveries)
        .where(_w.id == delivery_id)
        .values(status="failed", last_status_code=status_code, last_error=error, next_attempt_at=None)
    )
