"""The dispatcher's loops: send due messages through the connector, and sweep expiries and lapsed claims.

Timing decisions use the injected clock; the loops themselves poll in real time (``poll_seconds``)
and wake at once when the API accepts a message in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib

from rcsgate.clock import Clock
from rcsgate.connectors.base import Connector, OutboundMessage, Report, TryLater
from rcsgate.logging_setup import get_logger
from rcsgate.services import dispatching
from rcsgate.store.db import Database

log = get_logger("rcsgate.dispatch")


class Dispatcher:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        connector: Connector,
        wake: asyncio.Event,
        batch_size: int = 200,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.05,
        sweep_seconds: float = 0.25,
    ) -> None:
        self.db = db
        self.clock = clock
        self.connector = connector
        self.wake = wake
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.sweep_seconds = sweep_seconds

    async def send_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await dispatching.claim(
                self.db, self.clock, limit=self.batch_size, lease_seconds=self.lease_seconds
            )
            if batch:
                await asyncio.gather(*(self._send(message) for message in batch))
                continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.poll_seconds)

    async def _send(self, message: OutboundMessage) -> None:
        try:
            result = await self.connector.submit(message)
        except Exception as exc:  # a connector bug must not leave the message claimed until its lease lapses
            log.error(
                "connector_error", message_id=message.message_id, error=type(exc).__name__, exc_info=exc
            )
            result = TryLater(error=f"connector error: {type(exc).__name__}")
        await dispatching.record_submit(
            self.db, self.clock, message=message, result=result, upstream=self.connector.name
        )

    async def sweep_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            expired = await dispatching.expire_due(self.db, self.clock)
            reclaimed = await dispatching.reclaim_lapsed(self.db, self.clock)
            if reclaimed:
                log.warning("claims_reclaimed", count=reclaimed)
                self.wake.set()
            if expired:
                self.wake.set()  # fallbacks may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.sweep_seconds)

    async def on_report(self, report: Report) -> None:
        changed = await dispatching.apply_report(self.db, self.clock, report)
        if changed:
            self.wake.set()  # an undelivered RCS may have produced an SMS fallback to send
