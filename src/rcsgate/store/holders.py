"""Queries on claim_holders: the processes that claim work and their liveness beats."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.tables import claim_holders

_h = claim_holders.c


async def register(conn: AsyncConnection, *, label: str, now: datetime) -> int:
    result = await conn.execute(
        insert(claim_holders).values(label=label[:200], started_at=now, beat_at=now).returning(_h.id)
    )
    return int(result.scalar_one())


async def beat(conn: AsyncConnection, holder_id: int, *, now: datetime) -> bool:
    """Whether the holder's row is still there: gone, the reaper took it for dead and freed its claims."""
    result = await conn.execute(update(claim_holders).where(_h.id == holder_id).values(beat_at=now))
    return result.rowcount == 1


def _dead(beat_before: datetime, alive: Collection[int], all_others: bool) -> ColumnElement[bool]:
    condition = true() if all_others else _h.beat_at < beat_before
    return and_(condition, _h.id.not_in(list(alive))) if alive else condition


async def beats(conn: AsyncConnection) -> list[tuple[int, datetime]]:
    """Every holder's id and last beat: a handful of rows, one per process that claims (and the dead
    not reaped yet)."""
    return [(int(r.id), r.beat_at) for r in await conn.execute(select(_h.id, _h.beat_at))]


async def remove_dead(
    conn: AsyncConnection, *, beat_before: datetime, alive: Collection[int] = (), all_others: bool = False
) -> list[int]:
    """Delete the holders whose last beat is older than ``beat_before`` (every one but ``alive`` with
    ``all_others``) and return their ids. One conditional DELETE, so that a beat committing meanwhile
    either keeps its holder out of it (PostgreSQL re-checks the condition on the row's latest
    version) or, waiting for this transaction, finds its row gone."""
    result = await conn.execute(
        delete(claim_holders).where(_dead(beat_before, alive, all_others)).returning(_h.id)
    )
    return sorted(int(r.id) for r in result)
