"""Per-account request budget (``RCSGATE_RATE_LIMIT``, e.g. ``200/second``).

Embedded (SQLite, one process): a sliding window counter in this process's memory (the current and
the previous window's counts, the latter weighted by how much of it still overlaps; constant cost
per request, where a moving window's log of timestamps grows with the limit).

PostgreSQL (any number of API processes): a fixed window whose count lives in the database,
so the limit holds across processes and machines. A process takes its budget in chunks (a tenth
of the limit, at most 50 requests) and spends them locally, so the database sees one small
update per chunk rather than one per request. Tokens a process took but did not spend before the
window ends are lost, so under load spread over many processes an account may be refused a few
requests before reaching the limit exactly; it is never allowed more.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Protocol

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from rcsgate.domain.errors import RateLimited
from rcsgate.store import rate_limits
from rcsgate.store.db import Database

MESSAGE = "Too Many Attempts."


class AccountRateLimiter(Protocol):
    async def hit(self, account_id: int) -> None:
        """Count one request; raise RateLimited (with Retry-After seconds) when over budget."""
        ...


def build_limiter(spec: str, db: Database) -> AccountRateLimiter:
    return LocalRateLimiter(spec) if db.is_sqlite else SharedRateLimiter(spec, db)


class LocalRateLimiter:
    def __init__(self, spec: str) -> None:
        self._item = parse(spec)
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def hit(self, account_id: int) -> None:
        key = str(account_id)
        if self._limiter.hit(self._item, "account", key):
            return
        stats = self._limiter.get_window_stats(self._item, "account", key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(MESSAGE, retry_after=retry_after)


@dataclass
class _Chunk:
    window_start: int
    left: int
    exhausted: bool = False  # the window's shared budget is spent: refuse without asking again


class SharedRateLimiter:
    def __init__(self, spec: str, db: Database) -> None:
        item = parse(spec)
        self.db = db
        self.limit = item.amount
        self.period = item.get_expiry()
        self.chunk = max(1, min(50, self.limit // 10))
        self._chunks: dict[int, _Chunk] = {}
        # One refill per account at a time: a burst that empties the chunk waits for that refill
        # instead of each request taking a chunk (and a database connection) of its own.
        self._refills: dict[int, asyncio.Lock] = {}

    async def hit(self, account_id: int) -> None:
        now = time.time()
        window_start = int(now // self.period * self.period)
        chunk = self._current(account_id, window_start)
        if chunk.left == 0 and not chunk.exhausted:
            async with self._refills.setdefault(account_id, asyncio.Lock()):
                chunk = self._current(account_id, window_start)
                if chunk.left == 0 and not chunk.exhausted:
                    chunk.left = await self._take(account_id, window_start)
                    chunk.exhausted = chunk.left == 0
        if chunk.left == 0:
            raise RateLimited(MESSAGE, retry_after=max(1, math.ceil(window_start + self.period - now)))
        chunk.left -= 1

    def _current(self, account_id: int, window_start: int) -> _Chunk:
        chunk = self._chunks.get(account_id)
        if chunk is None or chunk.window_start != window_start:
            chunk = self._chunks[account_id] = _Chunk(window_start, 0)
        return chunk

    async def _take(self, account_id: int, window_start: int) -> int:
        # A whole chunk if the window has room for it, else one request at a time to use the rest.
        for amount in (self.chunk, 1) if self.chunk > 1 else (1,):
            async with self.db.write() as conn:
                if await rate_limits.take(
                    conn, account_id=account_id, window_start=window_start, amount=amount, limit=self.limit
                ):
                    return amount
        return 0
