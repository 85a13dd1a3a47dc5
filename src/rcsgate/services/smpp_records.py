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
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


class SmppRecords:
    """One per connector and process. ``wake`` is called after a commit that may have written
    webhooks, so the sender looks at once."""

    MAX_BATCH = 500

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
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def accepted_parts(self, message_id: int) -> dict[int, str]:
        async with self.db.read() as conn:
            return await store.accepted_parts(conn, message_id)

    async def accepted(self, part: store.AcceptedPart) -> None:
        await self._put(part)

    async def receipt(self, receipt: store.ReceiptRow) -> None:
        await self._put(receipt)

    async def inbound(self, sms: InboundSms) -> None:
        await self._put(sms)

    async def _put(self, item: _Item) -> None:
        waiting = _Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name=f"smpp-records-{self.connector}")
        await asyncio.shield(waiting.done)

    async def _write_all(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # let answers and receipts already read hand theirs in
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                async with self.db.write() as conn:
                    changed = await self._apply(conn, [w.item for w in batch])
            except Exception as exc:
                log.warning("smpp_records_failed", connector=self.connector, error=type(exc).__name__)
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
                continue
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_result(None)
            if changed and self.wake is not None:
                self.wake()

    async def _apply(self, conn: AsyncConnection, items: list[_Item]) -> bool:
        now = self.clock.now()
        accepted = [i for i in items if isinstance(i, store.AcceptedPart)]
        receipts = [i for i in items if isinstance(i, store.ReceiptRow)]
        inbound = [i for i in items if isinstance(i, InboundSms)]
        await store.record_accepted(conn, self.connector_id, accepted, now)
        touched = set(await store.record_receipts(conn, self.connector_id, _last_per_id(receipts), now))
        # An answer may join a receipt that came first: its message is looked at too.
        touched.update(a.message_id for a in accepted)
        reports: list[Report] = [
            StatusReport(
                mid, "delivered" if o.status == "delivered" else "undelivered", now, o.reason, self.connector
            )
            for mid, o in (await store.outcomes(conn, sorted(touched))).items()
        ]
        applied = await dispatching.record_in(conn, self.clock, reports=reports, lock=not self.db.is_sqlite)
        if inbound:
            await self._inbound(conn, inbound, now)
        return bool(applied.changed or inbound)

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
