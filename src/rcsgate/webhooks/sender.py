"""The outbox sender: delivers webhook rows with retries, apart from the message pipeline.

A slow or dead receiver costs this loop a connection slot for at most the timeout; it never
holds a database transaction, and messages keep moving whatever receivers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy.engine import Row

from rcsgate.clock import Clock
from rcsgate.domain.backoff import retry_delay
from rcsgate.logging_setup import get_logger
from rcsgate.store import webhooks as store
from rcsgate.store.db import Database
from rcsgate.webhooks.http_delivery import DeliveryResult, make_session, post_webhook
from rcsgate.webhooks.signing import signed_headers

log = get_logger("rcsgate.webhooks")


class WebhookSender:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        schedule: Sequence[float],
        allow_private: bool,
        timeout_seconds: float = 10.0,
        concurrency: int = 200,
        batch_size: int = 1000,
        poll_seconds: float = 0.05,
        lease_seconds: float = 120.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.schedule = tuple(schedule)
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self._rng = random.Random()

    async def run(self, stop: asyncio.Event) -> None:
        session = make_session(limit=self.concurrency)
        try:
            while not stop.is_set():
                now = self.clock.now()
                async with self.db.write() as conn:
                    batch = await store.claim_due(
                        conn,
                        now=now,
                        lease_until=now + timedelta(seconds=self.lease_seconds),
                        limit=self.batch_size,
                        skip_locked=not self.db.is_sqlite,
                    )
                if batch:
                    results = await asyncio.gather(
                        *(self._post(session, row, secret) for row, secret in batch)
                    )
                    await self._record(list(zip((row for row, _ in batch), results, strict=True)))
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
        finally:
            await session.close()

    async def _post(self, session: aiohttp.ClientSession, row: Row[Any], secret: str) -> DeliveryResult:
        body = row.body.encode()
        # The signature timestamp is wall time: receivers compare it with their own clocks.
        headers = signed_headers(
            secret=secret, webhook_id=row.webhook_id, timestamp=datetime.now(UTC), body=body
        )
        return await post_webhook(
            session,
            url=row.url,
            body=body,
            headers=headers,
            timeout_s=self.timeout_seconds,
            allow_private=self.allow_private,
        )

    async def _record(self, outcomes: list[tuple[Row[Any], DeliveryResult]]) -> None:
        now = self.clock.now()
        delivered = [
            (row.id, result.status_code) for row, result in outcomes if result.outcome == "delivered"
        ]
        async with self.db.write() as conn:
            await store.mark_delivered(conn, items=delivered, now=now)
            for row, result in outcomes:
                if result.outcome == "delivered":
                    continue
                delay = (
                    retry_delay(row.attempts, self.schedule, rng=self._rng)
                    if result.outcome == "retry"
                    else None
                )
                if delay is None:
                    await store.mark_failed(
                        conn, delivery_id=row.id, status_code=result.status_code, error=result.error
                    )
                    log.warning(
                        "webhook_gave_up", delivery_id=row.id, attempts=row.attempts, error=result.error
                    )
                else:
                    await store.mark_retry(
                        conn,
                        delivery_id=row.id,
                        status_code=result.status_code,
                        error=result.error,
                        next_attempt_at=now + timedelta(seconds=delay),
                    )
