"""Recognising a request seen before: the same body again too soon (429), or an Idempotency-Key
replay (the original answer). Both run inside the accepting transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, RateLimited
from rcsgate.store import bulk, rate_limits
from rcsgate.store.db import Database
from rcsgate.store.tables import idempotency_keys, request_fingerprints

DUPLICATE = "Too many duplicate request detected"


@dataclass(frozen=True, slots=True)
class RequestKey:
    """How a request is recognised again: a hash of its body, and the client's Idempotency-Key if any."""

    body_hash: str
    idempotency_key: str | None


def repeat_answer(
    key: RequestKey,
    *,
    stored: tuple[str, str] | None,
    seen_at: datetime | None,
    now: datetime,
    window: float,
) -> str | None:
    """The answer to replay for a request already seen, given the account's stored Idempotency-Key
    entry (body hash, answer) or when its body was last accepted; raises for a duplicate body or a
    reused key; None for a new request."""
    if key.idempotency_key is not None:
        if stored is None:
            return None
        body_hash, answer = stored
        if body_hash != key.body_hash:
            raise InvalidInput.field(
                "Idempotency-Key", "The Idempotency-Key was already used with a different request body."
            )
        return answer
    if seen_at is not None and now - seen_at < timedelta(seconds=window):
        retry_after = max(1, int((seen_at + timedelta(seconds=window) - now).total_seconds()) + 1)
        raise RateLimited(DUPLICATE, retry_after=retry_after)
    return None


async def earlier_answer(
    conn: AsyncConnection, *, account_id: int, key: RequestKey, now: datetime, window: float
) -> str | None:
    """``repeat_answer`` for one request, read inside the accepting transaction."""
    stored: tuple[str, str] | None = None
    seen_at: datetime | None = None
    if key.idempotency_key is not None:
        row = (
            await conn.execute(
                select(idempotency_keys.c.body_hash, idempotency_keys.c.response).where(
                    idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key.idempotency_key
                )
            )
        ).first()
        stored = (str(row.body_hash), str(row.response)) if row else None
    else:
        seen_at = (
            await conn.execute(
                select(request_fingerprints.c.created_at).where(
                    request_fingerprints.c.account_id == account_id,
                    request_fingerprints.c.body_hash == key.body_hash,
                )
            )
        ).scalar_one_or_none()
    return repeat_answer(key, stored=stored, seen_at=seen_at, now=now, window=window)


async def remember(
    conn: AsyncConnection, *, account_id: int, key: RequestKey, answer: str, now: datetime
) -> None:
    await remember_many(conn, [(account_id, key, answer)], now=now)


async def remember_many(
    conn: AsyncConnection, accepted: list[tuple[int, RequestKey, str]], *, now: datetime
) -> None:
    """Fingerprint each accepted (account, request, answer), and keep the answers of Idempotency-Keys.
    The (account, body) pairs must be distinct: one upsert may not touch a row twice."""
    if not accepted:
        return
    await bulk.insert_many(
        conn,
        request_fingerprints,
        [{"account_id": a, "body_hash": k.body_hash, "created_at": now} for a, k, _ in accepted],
        on_conflict="ON CONFLICT (account_id, body_hash) DO UPDATE SET created_at = excluded.created_at",
    )
    keyed = [
        {
            "account_id": a,
            "key": k.idempotency_key,
            "body_hash": k.body_hash,
            "status_code": 200,
            "response": answer,
            "created_at": now,
        }
        for a, k, answer in accepted
        if k.idempotency_key is not None
    ]
    await bulk.insert_many(conn, idempotency_keys, keyed)


async def purge_fingerprints(db: Database, clock: Clock, *, window: float) -> None:
    cutoff = clock.now() - timedelta(seconds=window)
    async with db.write() as conn:
        await conn.execute(request_fingerprints.delete().where(request_fingerprints.c.created_at < cutoff))


async def purge_rate_windows(db: Database, clock: Clock) -> None:
    """Forget request budgets of windows that started over two days ago (a day is the longest window
    that makes sense for a request rate)."""
    if db.is_sqlite:
        return  # the embedded limiter keeps its windows in memory
    async with db.write() as conn:
        await rate_limits.purge_before(conn, int(clock.now().timestamp()) - 2 * 86400)
