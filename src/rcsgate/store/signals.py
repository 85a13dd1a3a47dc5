"""Wake-ups between processes, and singleton leadership, through PostgreSQL alone.

In embedded mode the API and the workers share one process, so an ``asyncio.Event`` is enough.
Scaled out, an API process that accepts a message NOTIFYs, and every worker LISTENs and wakes its
loops at once; polling stays as the fallback for anything a notification misses (a worker that
was reconnecting, future due times). Notifications carry no data: they only say "look now".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.logging_setup import get_logger
from rcsgate.store.db import Database

log = get_logger("rcsgate.signals")

DUE: Final = "rcsgate_due"  # messages became due (accepted, resumed)
CAMPAIGNS: Final = "rcsgate_campaigns"  # a campaign was created or changed state
CHANNELS: Final = (DUE, CAMPAIGNS)

# Advisory lock keys of the singleton jobs (any two distinct 64-bit integers of ours).
SWEEP_LOCK: Final = 0x7263_7367_0001  # "rcsg" + 1: expiry, lease reaper, campaign scheduler
HOUSEKEEPING_LOCK: Final = 0x7263_7367_0002
# The process holding it runs every SMPP bind (one bind per connector across all processes).
SMPP_LOCK: Final = 0x7263_7367_0003


class Signals:
    """Local wake events of this process, forwarded to other processes on PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.events: dict[str, asyncio.Event] = {channel: asyncio.Event() for channel in CHANNELS}
        self._pending: set[str] = set()
        self._poked = asyncio.Event()

    @property
    def due(self) -> asyncio.Event:
        return self.events[DUE]

    @property
    def campaigns(self) -> asyncio.Event:
        return self.events[CAMPAIGNS]

    def poke(self, channel: str) -> None:
        """Wake this process's loops now, and other processes' soon (one NOTIFY per burst)."""
        self.events[channel].set()
        if not self.db.is_sqlite:
            self._pending.add(channel)
            self._poked.set()

    async def notify_loop(self, stop: asyncio.Event) -> None:
        """Send the pending notifications; many pokes during one round trip become one NOTIFY."""
        if self.db.is_sqlite:
            await stop.wait()
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), timeout=1.0)
            self._poked.clear()
            channels, self._pending = self._pending, set()
            if channels:
                async with self.db.engine.begin() as conn:
                    for channel in sorted(channels):
                        await conn.execute(text("SELECT pg_notify(:c, '')"), {"c": channel})

    async def listen_loop(self, stop: asyncio.Event) -> None:
        """Set the local events when another process notifies; reconnects after a lost connection."""
        if self.db.is_sqlite:
            await stop.wait()
            return
        await listen(self.db, self.events, stop)


async def listen(db: Database, events: Mapping[str, asyncio.Event], stop: asyncio.Event) -> None:
    lost = asyncio.Event()

    def on_notify(_conn: Any, _pid: int, channel: str, _payload: str) -> None:
        event = events.get(channel)
        if event is not None:
            event.set()

    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        raw.add_termination_listener(lambda _c: lost.set())
        for channel in events:
            await raw.add_listener(channel, on_notify)
        # Anything notified before we listened is picked up by one look now.
        for event in events.values():
            event.set()
        log.info("listening", channels=sorted(events))
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            if not lost.is_set():
                for channel in events:
                    with contextlib.suppress(Exception):
                        await raw.remove_listener(channel, on_notify)
    if lost.is_set() and not stop.is_set():
        # Raising lets the loop guard restart us after its pause, i.e. reconnect.
        raise ConnectionError("LISTEN connection lost")


class SingletonLock:
    """Leadership of one job among all processes: a session advisory lock on a connection kept open.

    If the leader dies, PostgreSQL ends its session and releases the lock, so another process takes
    the job over at its next try. On SQLite (one process) every caller leads.
    """

    def __init__(self, db: Database, key: int) -> None:
        self.db = db
        self.key = key
        self._conn: AsyncConnection | None = None

    async def held(self) -> bool:
        if self.db.is_sqlite:
            return True
        if self._conn is not None:
            try:
                # Cheap liveness check: a dead connection means the lock is gone too.
                await self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                await self.release()
                raise
        conn = await self.db.engine.connect()
        # Autocommit: the session must hold the lock, not an open transaction (and its snapshot).
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})).scalar()
        except BaseException:
            await conn.close()
            raise
        if got:
            self._conn = conn
            log.info("singleton_acquired", key=self.key)
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            with contextlib.suppress(Exception):
                await conn.close()
