"""What an SMPP bind learns, written to the database before the SMSC hears back from us.

Three kinds of facts, grouped into one transaction per batch (a bind has up to its window of
answers and any number of receipts in flight; one commit each would cap it at the disk's pace):

* an accepted part (submit_sm_resp): the SMSC's id mapped to our message and part. The connector
  holds the part's window slot until this commit, so a crash leaves at most a window of parts
  submitted but unrecorded: the only parts that can be sent twice.
* a final receipt (deliver_sm): applied to its part, and the message moved when its parts say so;
  the SMSC gets deliver_sm_resp only after the commit, so a crash means it redelivers, and a
  receipt applied twice changes nothing (the part's state is a compare-and-set).
* an inbound SMS (deliver_sm that is no receipt): kept and posted as an ``inbound`` webhook.

Answers and deliver_sm go in two lanes, each writing one batch (one transaction) at a time, and
taking its batch once the transaction may write (whatever arrived while it waited for its turn
joins). An answer's transaction stays small (one statement, unless it joins a receipt that came
first), so a window slot is not held while receipts move messages, write webhooks and charge; a
receipt batch may wait a little to fill up (``SmppRecords._fill``), as its transaction's fixed cost
is most of what a small batch costs. The smpp_parts statements are written out per engine and
handed to the driver (SQLAlchemy's compilation of a multi-row upsert cost more than the upsert),
and a one-part message's outcome is read from the row its receipt updated rather than looked up
again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.connectors.base import Report, StatusReport
from rcsgate.logging_setup import get_logger
from rcsgate.services import dispatching
from rcsgate.services.lifecycle import Msg, enqueue_inbound_webhook, unit_of_work
from rcsgate.store import connectors as connector_store
from rcsgate.store import smpp as store
from rcsgate.store.db import Database
from rcsgate.store.tables import messages

log = get_logger("rcsgate.smpp")


@dataclass(frozen=True, slots=True)
class InboundSms:
    source: str  # digits of the sender's number
    destination: str
    text: str


_Item = store.AcceptedPart | store.ReceiptRow | InboundSms


@dataclass(slots=True)
class _Waiting:
    item: _Item
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Lane:
    """A queue of facts and the task that writes them, one batch (one transaction) at a time."""

    name: str
    # Whether a batch may wait to fill up (receipts, see SmppRecords._fill). Not answers: each holds
    # a window slot until committed, and the answers read together are queued by the time the
    # writer runs.
    fills: bool
    queue: list[_Waiting] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None
    # Receipts only (see SmppRecords._fill): how long the next batch may wait to fill up (0: not
    # at all), when a wait was last tried, and what ends the wait once the batch is full.
    linger: float = 0.0
    tried_at: float = 0.0
    filled: asyncio.Future[None] | None = None


class SmppRecords:
    """One per connector and process. ``wake`` is called after a commit that may have written
    webhooks, so the sender looks at once."""

    MAX_BATCH = 500
    # Receipts: a batch waits up to LINGER_MAX seconds to fill up to RECEIPT_BATCH while waiting
    # brings more (see _fill), well below the 64 deliver_sm the session handles at once (past which
    # it refuses them): receipts keep arriving while a batch is written. On SQLite fewer do (its
    # one write transaction at a time holds the answers, and so the next submits, back meanwhile),
    # and each commit costs more (every page the batch touched is written again): larger batches.
    RECEIPT_BATCH = 16
    RECEIPT_BATCH_SQLITE = 32
    LINGER_MAX = 0.02
    LINGER_MIN = 0.001
    LINGER_PROBE = 0.01
    PROBE_SECONDS = 1.0

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        connector_id: int,
        connector: str,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.connector_id = connector_id
        self.connector = connector
        self.wake = wake
        self._receipt_batch = self.RECEIPT_BATCH_SQLITE if db.is_sqlite else self.RECEIPT_BATCH
        self._answers = _Lane(f"smpp-answers-{connector}", fills=False)
        self._delivered = _Lane(f"smpp-receipts-{connector}", fills=True)

    async def accepted_parts(self, message_id: int) -> dict[int, str]:
        async with self.db.read() as conn:
            return await store.accepted_parts(conn, message_id)

    async def accepted(self, part: store.AcceptedPart) -> None:
        await self._put(self._answers, part)

    async def receipt(self, receipt: store.ReceiptRow) -> None:
        await self._put(self._delivered, receipt)

    async def inbound(self, sms: InboundSms) -> None:
        await self._put(self._delivered, sms)

    async def _put(self, lane: _Lane, item: _Item) -> None:
        waiting = _Waiting(item, asyncio.get_running_loop().create_future())
        lane.queue.append(waiting)
        if lane.filled is not None and len(lane.queue) >= self._receipt_batch and not lane.filled.done():
            lane.filled.set_result(None)
        if lane.writer is None or lane.writer.done():
            lane.writer = asyncio.create_task(self._write_all(lane), name=lane.name)
        await asyncio.shield(waiting.done)

    async def _write_all(self, lane: _Lane) -> None:
        while lane.queue:
            if lane.fills:
                await self._fill(lane)
            batch: list[_Waiting] = []
            try:
                async with self.db.write() as conn:
                    # Taken once the transaction is ours: whatever came while it waited for its
                    # turn (another writer's transaction, SQLite's one at a time) joins it.
                    batch, lane.queue = lane.queue[: self.MAX_BATCH], lane.queue[self.MAX_BATCH :]
                    changed = await self._apply(conn, [w.item for w in batch])
            except Exception as exc:
                log.warning("smpp_records_failed", connector=self.connector, error=type(exc).__name__)
                if not batch:  # the transaction never started: what waits for it fails
                    batch, lane.queue = lane.queue[: self.MAX_BATCH], lane.queue[self.MAX_BATCH :]
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
                continue
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_result(None)
            if changed and self.wake is not None:
                self.wake()

    async def _fill(self, lane: _Lane) -> None:
        """Let a batch of receipts fill up before its transaction, while that pays. The transaction
        has a fixed cost (it moves messages, writes their events and webhooks) that a batch of a
        few receipts pays in full. A wait that brought more receipts is allowed twice as long the
        next time, up to LINGER_MAX; one that brought none half as long, and below LINGER_MIN none
        at all but for a LINGER_PROBE wait at most every PROBE_SECONDS, to find out whether waiting
        would pay again. So an SMSC that sends a few deliver_sm and then waits for their answers
        is not kept waiting (a probe costs it ~20 ms a second), while a stream of receipts, or
        bursts of them, are written in batches."""
        await asyncio.sleep(0)  # receipts already read hand theirs in
        start = len(lane.queue)
        if start >= self._receipt_batch:
            return
        loop = asyncio.get_running_loop()
        linger = lane.linger
        if not linger:
            if loop.time() - lane.tried_at < self.PROBE_SECONDS:
                return
            linger = self.LINGER_PROBE
        lane.tried_at = loop.time()
        lane.filled = loop.create_future()
        try:
            await asyncio.wait((lane.filled,), timeout=linger)
        finally:
            lane.filled = None
        if len(lane.queue) > start:
            lane.linger = min(2 * linger, self.LINGER_MAX)
        else:
            lane.linger = linger / 2 if linger / 2 >= self.LINGER_MIN else 0.0

    async def _apply(self, conn: AsyncConnection, items: list[_Item]) -> bool:
        now = self.clock.now()
        accepted = [i for i in items if isinstance(i, store.AcceptedPart)]
        receipts = [i for i in items if isinstance(i, store.ReceiptRow)]
        inbound = [i for i in items if isinstance(i, InboundSms)]
        outcomes: dict[int, store.PartsOutcome] = {}
        # Messages whose parts must be looked at together: several parts, or an answer that
        # joined a receipt which came first.
        touched: set[int] = set()
        for mid, parts, state, stat, err in await _record_receipts(
            conn, self.connector_id, _last_per_id(receipts), now
        ):
            if parts is None or parts <= 1:
                outcomes[mid] = _outcome(state, stat, err)
            else:
                touched.add(mid)
        touched.update(await _record_accepted(conn, self.connector_id, accepted, now))
        touched.difference_update(outcomes)
        if touched:
            outcomes.update(await store.outcomes(conn, sorted(touched)))
        applied_changed = 0
        if outcomes:
            reports: list[Report] = [
                StatusReport(
                    mid,
                    "delivered" if o.status == "delivered" else "undelivered",
                    now,
                    o.reason,
                    self.connector,
                )
                for mid, o in sorted(outcomes.items())
            ]
            applied = await dispatching.record_in(
                conn, self.clock, reports=reports, lock=not self.db.is_sqlite
            )
            applied_changed = applied.changed
        if inbound:
            await self._inbound(conn, inbound, now)
        return bool(applied_changed or inbound)

    async def _inbound(self, conn: AsyncConnection, items: list[InboundSms], now: Any) -> None:
        async with unit_of_work(conn) as unit:
            for sms in items:
                reply_to = await _last_message_to(conn, self.connector, sms.source)
                if reply_to is not None:
                    account_id: int | None = int(reply_to.account_id)
                else:
                    accounts = await connector_store_accounts(conn, self.connector_id)
                    account_id = accounts[0] if len(accounts) == 1 else None
                kept = await connector_store.keep_events(
                    conn,
                    [
                        {
                            "connector_id": self.connector_id,
                            "event_key": f"mo:{uuid.uuid4().hex}",
                            "kind": "sms",
                            "account_id": account_id,
                            "message_id": int(reply_to.id) if reply_to is not None else None,
                            "phone": sms.source[:15],
                            "payload": sms.text,
                            "received_at": now,
                        }
                    ],
                )
                if account_id is None:
                    log.info("smpp_inbound_unplaced", connector=self.connector)
                    continue
                await enqueue_inbound_webhook(
                    unit,
                    account_id=account_id,
                    event_id=next(iter(kept.values())),
                    channel="sms",
                    phone=sms.source,
                    sender=reply_to.get("sender") if reply_to is not None else sms.destination,
                    text=sms.text,
                    location=None,
                    file=None,
                    reply_to=reply_to,
                    at=now,
                    now=now,
                )


def _outcome(state: str, stat: str | None, err: str | None) -> store.PartsOutcome:
    """A one-part message's outcome from its part's final receipt (as store.outcomes words it)."""
    if state != "undelivered":
        return store.PartsOutcome("delivered", None)
    reason = stat or "undelivered"
    if err:
        reason = f"{reason} err:{err}"
    return store.PartsOutcome("undelivered", reason)


# ---------------------------------------------------------------- smpp_parts, on the driver
#
# The same statements as store.smpp.record_accepted / record_receipts, written out: SQLite gets a
# multi-row VALUES (its text cached per row count), PostgreSQL one statement over arrays whose text
# never changes (asyncpg prepares it once). Rows go in smsc_id order, so two transactions upserting
# overlapping ids on PostgreSQL lock them in the same order.

_SQLITE_ACCEPTED: dict[int, str] = {}
_SQLITE_RECEIPTS: dict[int, str] = {}
_ACCEPTED_SET: Final = (
    "ON CONFLICT (connector_id, smsc_id) DO UPDATE SET message_id = excluded.message_id, "
    "part_no = excluded.part_no, parts = excluded.parts, updated_at = excluded.updated_at "
    "WHERE smpp_parts.message_id IS NULL RETURNING message_id, state"
)
_RECEIPTS_SET: Final = (
    "ON CONFLICT (connector_id, smsc_id) DO UPDATE SET state = excluded.state, stat = excluded.stat, "
    "err = excluded.err, updated_at = excluded.updated_at "
    "WHERE smpp_parts.state IN ('submitted', 'enroute') RETURNING message_id, parts, state, stat, err"
)
_PG_ACCEPTED: Final = (
    "INSERT INTO smpp_parts (connector_id, smsc_id, message_id, part_no, parts, state, created_at, updated_at) "
    "SELECT $1::bigint, u.smsc_id, u.message_id, u.part_no, u.parts, 'submitted', $2::timestamp, $2::timestamp "
    "FROM unnest($3::text[], $4::bigint[], $5::int[], $6::int[]) AS u(smsc_id, message_id, part_no, parts) "
    + _ACCEPTED_SET
)
_PG_RECEIPTS: Final = (
    "INSERT INTO smpp_parts (connector_id, smsc_id, state, stat, err, created_at, updated_at) "
    "SELECT $1::bigint, u.smsc_id, u.state, u.stat, u.err, $2::timestamp, $2::timestamp "
    "FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS u(smsc_id, state, stat, err) "
    + _RECEIPTS_SET
)


def _sqlite_sql(cache: dict[int, str], head: str, row: str, tail: str, n: int) -> str:
    sql = cache.get(n)
    if sql is None:
        sql = cache[n] = f"{head} VALUES {', '.join([row] * n)} {tail}"
    return sql


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _sqlite_time(moment: datetime) -> str:
    # The text SQLAlchemy's DateTime stores on SQLite (UtcDateTime: naive UTC).
    return _naive_utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")


async def _record_accepted(
    conn: AsyncConnection, connector_id: int, items: Sequence[store.AcceptedPart], now: datetime
) -> set[int]:
    """store.record_accepted's upsert; the ids of the messages whose answer joined a final receipt
    kept before it (their parts must be looked at)."""
    if not items:
        return set()
    # One row per id per statement; sorted, for the lock order.
    rows = sorted({item.smsc_id: item for item in items}.values(), key=lambda item: item.smsc_id)
    if conn.dialect.name == "postgresql":
        result = await conn.exec_driver_sql(
            _PG_ACCEPTED,
            (
                connector_id,
                _naive_utc(now),
                [r.smsc_id for r in rows],
                [r.message_id for r in rows],
                [r.part_no for r in rows],
                [r.parts for r in rows],
            ),
        )
    else:
        at = _sqlite_time(now)
        sql = _sqlite_sql(
            _SQLITE_ACCEPTED,
            "INSERT INTO smpp_parts "
            "(connector_id, smsc_id, message_id, part_no, parts, state, created_at, updated_at)",
            "(?, ?, ?, ?, ?, 'submitted', ?, ?)",
            _ACCEPTED_SET,
            len(rows),
        )
        params: list[Any] = []
        for r in rows:
            params += (connector_id, r.smsc_id, r.message_id, r.part_no, r.parts, at, at)
        result = await conn.exec_driver_sql(sql, tuple(params))
    # An inserted row says `submitted`; one that joined a receipt says what the receipt said.
    rows_back: list[Any] = list(result)
    return {int(row[0]) for row in rows_back if row[0] is not None and row[1] in ("delivered", "undelivered")}


async def _record_receipts(
    conn: AsyncConnection, connector_id: int, items: Sequence[store.ReceiptRow], now: datetime
) -> list[tuple[int, int | None, str, str | None, str | None]]:
    """store.record_receipts' upsert (a part's first final receipt wins; one for an id not known yet
    is kept for its answer); (message id, parts, state, stat, err) of each part it settled."""
    if not items:
        return []
    rows = sorted(items, key=lambda item: item.smsc_id)
    stats = [r.stat[:16] for r in rows]
    errs = [r.err[:16] if r.err else None for r in rows]
    if conn.dialect.name == "postgresql":
        result = await conn.exec_driver_sql(
            _PG_RECEIPTS,
            (connector_id, _naive_utc(now), [r.smsc_id for r in rows], [r.state for r in rows], stats, errs),
        )
    else:
        at = _sqlite_time(now)
        sql = _sqlite_sql(
            _SQLITE_RECEIPTS,
            "INSERT INTO smpp_parts (connector_id, smsc_id, state, stat, err, created_at, updated_at)",
            "(?, ?, ?, ?, ?, ?, ?)",
            _RECEIPTS_SET,
            len(rows),
        )
        params: list[Any] = []
        for r, stat, err in zip(rows, stats, errs, strict=True):
            params += (connector_id, r.smsc_id, r.state, stat, err, at, at)
        result = await conn.exec_driver_sql(sql, tuple(params))
    settled: list[Any] = list(result)
    return [
        (int(row[0]), None if row[1] is None else int(row[1]), row[2], row[3], row[4])
        for row in settled
        if row[0] is not None
    ]


def _last_per_id(receipts: list[store.ReceiptRow]) -> list[store.ReceiptRow]:
    """One row per SMSC id in one statement (a batch may hold a receipt and its redelivery)."""
    return list({r.smsc_id: r for r in reversed(receipts)}.values())


async def connector_store_accounts(conn: AsyncConnection, connector_id: int) -> list[int]:
    """With no earlier message to that phone, a reply belongs to the account whose senders use the
    connector, if only one account does."""
    return await store.accounts_sending_through(conn, connector_id)


async def _last_message_to(conn: AsyncConnection, upstream: str, phone: str) -> Msg | None:
    row = (
        await conn.execute(
            select(
                messages.c.id,
                messages.c.account_id,
                messages.c.sender,
                messages.c.reference_id,
                messages.c.callback_url,
            )
            .where(messages.c.phone == phone, messages.c.upstream == upstream, messages.c.type == "sms")
            .order_by(messages.c.id.desc())
            .limit(1)
        )
    ).first()
    return Msg(dict(row._mapping)) if row is not None else None
