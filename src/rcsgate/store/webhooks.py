"""Queries on the webhook outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.tables import accounts, webhook_deliveries

# Ids per IN list: well under both engines' limits on bound parameters.
_CHUNK = 5000
_w = webhook_deliveries.c
# What a delivery attempt needs.
_SENT_COLUMNS = (_w.id, _w.account_id, _w.message_id, _w.url, _w.body, _w.webhook_id, _w.attempts)


async def claim_chains(
    conn: AsyncConnection,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    skip_locked: bool,
) -> tuple[list[list[Row[Any]]], dict[int, str]]:
    """Take due pending deliveries as chains: each chain is the oldest pending delivery of a message
    followed by that message's later pending ones, in creation order, to be posted one after the
    other. A delivery is only ever taken with (or after) every older pending delivery of its
    message, so a receiver sees each message's callbacks in the order they were created.
    Returns the chains (at most ``limit`` deliveries in all) and the accounts' signing secrets.

    Which delivery is a message's oldest is decided here from the message's pending rows rather than
    by a correlated subquery, whose plan PostgreSQL gets badly wrong while the outbox grows faster
    than its statistics. Pushing next_attempt_at to the lease end keeps other senders off while this
    one works; a sender that dies leaves them to be taken again when the lease ends."""
    # Due deliveries in (status, next_attempt_at) index order; some wait behind an older delivery of
    # their message, so look at more than the limit.
    candidates = list(
        await conn.execute(
            select(_w.id, _w.message_id)
            .where(_w.status == "pending", _w.next_attempt_at <= now)
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
        .where(_w.id.in_([i for chain in chains for i in chain]), _w.status == "pending")
        .values(next_attempt_at=lease_until, attempts=_w.attempts + 1)
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
    if message_ids:
        query = (
            select(_w.id, _w.message_id, _w.next_attempt_at)
            .where(_w.message_id.in_(message_ids), _w.status == "pending")
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
    """PostgreSQL: lock the chains' rows, skipping those another sender holds or took meanwhile
    (the condition is checked again on the locked row); a chain ends before its first row not had."""
    query = (
        select(_w.id)
        .where(
            _w.id.in_([i for chain in chains for i in chain]),
            _w.status == "pending",
            _w.next_attempt_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    held = {int(r.id) for r in await conn.execute(query)}
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
        select(accounts.c.id, accounts.c.webhook_secret).where(accounts.c.id.in_(account_ids))
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
                .where(_w.id.in_(ids[start : start + _CHUNK]))
                .values(
                    status="delivered",
                    delivered_at=now,
                    last_status_code=code,
                    last_error=None,
                    next_attempt_at=None,
                )
            )


async def release(conn: AsyncConnection, *, ids: Sequence[int], now: datetime) -> None:
    """Deliveries claimed but not attempted (one before them in their chain was not delivered): due
    again, their claim's attempt not counted. They stay behind the older one still pending."""
    if ids:
        await conn.execute(
            update(webhook_deliveries)
            .where(_w.id.in_(list(ids)), _w.status == "pending")
            .values(next_attempt_at=now, attempts=_w.attempts - 1)
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
        .where(_w.id == delivery_id)
        .values(last_status_code=status_code, last_error=error, next_attempt_at=next_attempt_at)
    )


async def mark_failed(
    conn: AsyncConnection, *, delivery_id: int, status_code: int | None, error: str | None
) -> None:
    await conn.execute(
        update(webhook_deliveries)
        .where(_w.id == delivery_id)
        .values(status="failed", last_status_code=status_code, last_error=error, next_attempt_at=None)
    )
