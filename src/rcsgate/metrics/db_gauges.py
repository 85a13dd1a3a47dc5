"""The gauges read from the database when /metrics is scraped: the message queue, the webhook outbox
and the upstream events stored but not applied yet.

They describe the whole installation, not a process, so one process exports them (the one leading
the sweeper, see ``exposition``). Every query is answered from an index: counts by status from
``ix_messages_status_due_at_id`` and the outbox from its partial indexes over pending rows
(``store/webhooks.PENDING``), the unapplied events from the primary key of their own table
(``upstream_events_pending``), each count stopping at ``COUNT_LIMIT`` rows so that a scrape costs a
bounded amount whatever the backlog; the oldest due row is the first entry of an index range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.db import Database
from rcsgate.store.tables import messages, upstream_events_pending, webhook_deliveries
from rcsgate.store.webhooks import PENDING

# Statuses a message waits in: for its campaign's start, to be sent, in a worker's hands, for its report.
QUEUE_STATUSES: Final = ("scheduled", "accepted", "sending", "sent")
# A count stops here (the gauge then reads this number): a bigger backlog is an alert anyway, and
# the scrape stays cheap.
COUNT_LIMIT: Final = 100_000


@dataclass(frozen=True, slots=True)
class DbGauges:
    queue: dict[str, int]
    # How long the most overdue message waiting to be sent (accepted, due_at passed) has been due.
    queue_oldest_seconds: float
    outbox_pending: int
    # Likewise for the outbox: the most overdue pending delivery (claimed ones are not due).
    outbox_oldest_seconds: float
    # Google's events answered and stored but not applied yet: milliseconds' worth normally; a
    # number that stays up means the applying side lags or fails (services/upstream_events).
    upstream_unapplied: int

    def metrics(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "rcsgate_queue_messages",
            f"Messages waiting, by status (from the database; counts stop at {COUNT_LIMIT}).",
            labels=["status"],
        )
        for status, count in self.queue.items():
            queue.add_metric([status], count)
        yield queue
        yield GaugeMetricFamily(
            "rcsgate_queue_oldest_age_seconds",
            "How long the most overdue message waiting to be sent (accepted, due) has been due; 0 when none.",
            value=self.queue_oldest_seconds,
        )
        yield GaugeMetricFamily(
            "rcsgate_webhook_outbox_pending",
            f"Webhook deliveries not yet delivered nor given up (counts stop at {COUNT_LIMIT}).",
            value=self.outbox_pending,
        )
        yield GaugeMetricFamily(
            "rcsgate_webhook_outbox_oldest_age_seconds",
            "How long the most overdue pending webhook delivery has been due; 0 when none.",
            value=self.outbox_oldest_seconds,
        )
        yield GaugeMetricFamily(
            "rcsgate_upstream_events_unapplied",
            "Upstream events (Google RBM's) stored and answered but not applied yet "
            f"(counts stop at {COUNT_LIMIT}).",
            value=self.upstream_unapplied,
        )


async def _capped_count(conn: AsyncConnection, table: Any, *where: ColumnElement[bool]) -> int:
    rows = select(literal(1).label("one")).select_from(table).where(*where).limit(COUNT_LIMIT).subquery()
    return int((await conn.execute(select(func.count()).select_from(rows))).scalar_one())


def _age(now: datetime, oldest: datetime | None) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


async def read(db: Database, now: datetime) -> DbGauges:
    async with db.read() as conn:
        queue = {
            status: await _capped_count(conn, messages, messages.c.status == status)
            for status in QUEUE_STATUSES
        }
        # The first entry of an index range (written so, not as min(), for both planners).
        oldest = (
            await conn.execute(
                select(messages.c.due_at)
                .where(messages.c.status == "accepted", messages.c.due_at <= now)
                .order_by(messages.c.due_at)
                .limit(1)
            )
        ).scalar_one_or_none()
        w = webhook_deliveries.c
        pending = await _capped_count(conn, webhook_deliveries, PENDING)
        outbox_oldest = (
            await conn.execute(
                select(w.next_attempt_at)
                .where(PENDING, w.next_attempt_at <= now)
                .order_by(w.next_attempt_at, w.id)
                .limit(1)
            )
        ).scalar_one_or_none()
        unapplied = await _capped_count(conn, upstream_events_pending)
    return DbGauges(queue, _age(now, oldest), pending, _age(now, outbox_oldest), unapplied)
