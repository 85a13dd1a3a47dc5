"""The shared request budget: per account and fixed window, taken in chunks by API processes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, literal_column, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.tables import rate_limit_windows as t


async def take(conn: AsyncConnection, *, account_id: int, window_start: int, amount: int, limit: int) -> bool:
    """Take ``amount`` requests of the window's ``limit``: all of them, or none (PostgreSQL)."""
    await conn.execute(
        pg_insert(t)
        .values(account_id=account_id, window_start=window_start, used=0)
        .on_conflict_do_nothing(index_elements=[t.c.account_id, t.c.window_start])
    )
    taken: Any = await conn.execute(
        update(t)
        .where(
            t.c.account_id == account_id,
            t.c.window_start == window_start,
            t.c.used + amount <= limit,
        )
        .values(used=t.c.used + amount)
        .returning(literal_column("1"))
    )
    return taken.first() is not None


async def purge_before(conn: AsyncConnection, window_start: int) -> None:
    await conn.execute(delete(t).where(t.c.window_start < window_start))
