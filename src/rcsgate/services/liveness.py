"""Transactions of claim holders: registering a process that claims work, and its liveness beat."""

from __future__ import annotations

from rcsgate.clock import Clock
from rcsgate.store import holders
from rcsgate.store.db import Database


async def register(db: Database, clock: Clock, *, label: str, on_id: set[int]) -> int:
    """A new holder's id, added to ``on_id`` before the commit: the process's own reaper must know
    the id as alive from the moment another could see it."""
    async with db.write() as conn:
        holder_id = await holders.register(conn, label=label, now=clock.now())
        on_id.add(holder_id)
    return holder_id


async def beat(db: Database, clock: Clock, holder_id: int) -> bool:
    """Whether the holder is still registered (False: it was taken for dead, its claims freed)."""
    async with db.write() as conn:
        return await holders.beat(conn, holder_id, now=clock.now())
