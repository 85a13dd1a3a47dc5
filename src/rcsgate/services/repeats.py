"""Recognising a request seen before: the same body again too soon (429), or an Idempotency-Key
replay (the original answer). Both run inside the accepting transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, RateLimited
from rcsgate.store import rate_limits
from rcsgate.store.db import Database
from rcsgate.store.tables import idempotency_keys, request_fingerprints

DUPLICATE = "Too many duplicate request detected"


@dataclass(frozen=True, slots=True)
class RequestKey:
    """How a request is recognised again: a hash of its body, and the client's Idempotency-Key if any."""

    body_hash: str
    idempotency_key: str | None


async def earlier_answer(
    conn: AsyncConnection, *, account_id: int, key: RequestKey, now: datetime, window: float
) -> str | None:
    """The stored answer of an Idempotency-Key replay; raises for a duplicate body or a reused key."""
    if key.idempotency_key is not None:
        row = (
            await conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key.idempotency_key
                )
            )
        ).first()
        if row is None:
            return None
        if row.body_hash != key.body_hash:
            raise InvalidInput.field(
                "Idempotency-Key", "The Idempotency-Key was already used with a different request body."
            )
        return str(row.response)
    seen = (
        await conn.execute(
            select(request_fingerprints.c.created_at).where(
                request_fingerprints.c.account_id == account_id,
                request_fingerprints.c.body_hash == key.body_hash,
            )
        )
    ).scalar_one_or_none()
    if seen is not None and now - seen < timedelta(seconds=window):
        retry_after = max(1, int((seen + timedelta(seconds=window) - now).total_seconds()) + 1)
        raise RateLimited(DUPLICATE, retry_after=retry_after)
    return None


async def remember(
    conn: AsyncConnection, *, account_id: int, key: RequestKey, answer: str, now: datetime
) -> None:
    insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    stmt = insert(request_fingerprints).values(account_id=account_id, body_hash=key.body_hash, created_at=now)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["account_id", "body_hash"], set_={"created_at": now})
    )
    if key.idempotency_key is not None:
        await conn.execute(
            idempotency_keys.insert().values(
                account_id=account_id,
                key=key.idempotency_key,
                body_hash=key.body_hash,
                status_code=200,
                response=answer,
                created_at=now,
            )
        )


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
