"""Events an upstream pushes to us (Google RBM's webhook), applied exactly once.

Each event is stored under the upstream's own id (``upstream_events``), and the HTTP answer goes
out only after that commit: Google retries anything it did not get a 200 for (for 7 days), so
nothing is lost, and a redelivered event finds its id taken and changes nothing. Stored events are
applied right after, in transactions of their own that mark them applied (compare-and-set), so
each is applied once; what a crash or a failed transaction left stored and unapplied is applied by
``apply_left_over``, which every worker process runs. Delivery, read and revocation events are
reports on our messages; a tap on a suggestion is a click webhook with the customer's own
postback; user replies (text, location, file) are posted to the account as ``inbound`` webhooks.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.connectors.base import ClickReport, Report, StatusReport
from rcsgate.connectors.rbm import events as rbm_events
from rcsgate.connectors.rbm import protocol
from rcsgate.connectors.rbm.content import suggestion_of
from rcsgate.connectors.rbm.settings import RbmSettings
from rcsgate.domain import json_text
from rcsgate.domain.records import ConnectorRecord
from rcsgate.logging_setup import get_logger
from rcsgate.services import dispatching
from rcsgate.services.lifecycle import Msg, enqueue_inbound_webhook, unit_of_work
from rcsgate.store import connectors as connector_store
from rcsgate.store.db import Database
from rcsgate.store.tables import messages, rcs_agents

log = get_logger("rcsgate.upstream_events")

# Connectors are read at most this often per process for their tokens and salts.
_CACHE_SECONDS: Final = 2.0
# An RBM connector with its settings (parsed once per read, not per push); None: no such RBM connector.
_Found = tuple[ConnectorRecord, RbmSettings] | None
_cache: weakref.WeakKeyDictionary[Database, dict[str, tuple[float, _Found]]] = weakref.WeakKeyDictionary()
_reading: weakref.WeakKeyDictionary[Database, dict[str, asyncio.Task[_Found]]] = weakref.WeakKeyDictionary()


async def _connector(db: Database, name: str) -> _Found:
    cached = _cache.setdefault(db, {})
    hit = cached.get(name)
    if hit is not None and time.monotonic() - hit[0] < _CACHE_SECONDS:
        return hit[1]
    # One read per expiry, shared: with hundreds of pushes in flight, each reading the row itself
    # when the entry lapsed cost ~7 % of the API process's CPU (py-spy, 2026-12-04).
    reading = _reading.setdefault(db, {})
    task = reading.get(name)
    if task is None:
        task = reading[name] = asyncio.create_task(_read_connector(db, name, cached))
        task.add_done_callback(lambda done: reading.get(name) is done and reading.pop(name))
    return await asyncio.shield(task)


async def _read_connector(db: Database, name: str, cached: dict[str, tuple[float, _Found]]) -> _Found:
    async with db.read() as conn:
        record = await connector_store.get_by_name(conn, name)
    found = (
        (record, RbmSettings.of(record.config, record.secrets))
        if record is not None and record.kind == "rbm"
        else None
    )
    cached[name] = (time.monotonic(), found)
    return found


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str
    media_type: Literal["application/json", "text/plain"] = "application/json"


def _json(status: int, message: str, **extra: Any) -> Answer:
    return Answer(status, json.dumps({"message": message, **extra}))


async def rbm_push(
    db: Database,
    clock: Clock,
    *,
    name: str,
    body: bytes,
    signature: str | None,
    wake: Callable[[], None] | None = None,
) -> Answer:
    """Handle one POST from Google to ``/api/upstream/rbm/{name}``: answered once its event is
    stored; the event is applied right after (``wake`` is called when that made SMS fallbacks due)."""
    found = await _connector(db, name)
    if found is None:
        return _json(404, "Not found.")
    record, settings = found
    token = settings.webhook_token or ""
    try:
        parsed = json_text.loads(body)
    except (ValueError, RecursionError):
        return _json(400, "The body is not JSON.")
    if (
        isinstance(parsed, dict)
        and "clientToken" in parsed
        and "secret" in parsed
        and "message" not in parsed
    ):
        # Google's validation handshake: prove we hold the client token by echoing the secret.
        offered = parsed.get("clientToken")
        # Compared as bytes: compare_digest refuses str with non-ASCII characters.
        if (
            not token
            or not isinstance(offered, str)
            or not hmac.compare_digest(offered.encode("utf-8", "surrogatepass"), token.encode())
        ):
            return _json(401, "Unknown client token.")
        return Answer(200, str(parsed.get("secret", "")), "text/plain")
    data = protocol.open_envelope(parsed)
    if data is None:
        return _json(400, "Not a push envelope: message.data is missing or not base64.")
    if not token:
        log.warning("rbm_event_refused", connector=name, why="no webhook token configured")
        return _json(401, "The connector has no webhook token, so no event can be verified.")
    if not protocol.signature_ok(token, data, signature):
        log.warning("rbm_event_refused", connector=name, why="bad signature")
        return _json(401, "Invalid signature.")
    try:
        event = rbm_events.decode_event(data)
    except ValueError as exc:
        return _json(400, str(exc)[:300])
    key = event.dedupe_key
    if isinstance(event, rbm_events.Ignored) or key is None:
        log.info("rbm_event_ignored", connector=name, kind=getattr(event, "kind", type(event).__name__))
        return _json(200, "ignored")
    batcher = _batcher(db, clock)
    batcher.wake = wake
    new = await batcher.keep(_Event(record, settings, event, key, data))
    return Answer(200, _OK_NEW if new else _OK_SEEN)


_OK_NEW: Final = json.dumps({"message": "ok", "new": True})
_OK_SEEN: Final = json.dumps({"message": "ok", "new": False})


@dataclass(slots=True)
class _Event:
    record: ConnectorRecord
    settings: RbmSettings
    event: rbm_events.Event
    key: str
    data: bytes


@dataclass(slots=True)
class _Waiting:
    item: _Event
    done: asyncio.Future[bool]


@dataclass(slots=True)
class _Inbound:
    account_id: int
    phone: str
    reply_to: Msg | None
    at: datetime


@dataclass(slots=True)
class _Stored:
    """An event kept in ``upstream_events`` (row ``row``), and what applying it does."""

    row: int
    item: _Event
    report: Report | None
    inbound: _Inbound | None


class _EventBatcher:
    """Events from concurrent pushes, in two steps. Stored together: Google (and the local RBM)
    keep several pushes in flight, and one transaction for what has queued costs far less than one
    each; every push is answered only after the transaction holding its event has committed, and if
    it fails, every push of the batch gets the error (a 5xx: Google pushes them again). Applied
    after, in transactions of their own while the next pushes are being stored: the two overlap,
    where one transaction doing both alternated between the API's CPU and the database's
    (docs/PERFORMANCE.md, RBM). An applying transaction that fails leaves its events stored and
    unapplied, for ``apply_left_over``."""

    MAX_BATCH = 500
    MAX_APPLY = 2000

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.wake: Callable[[], None] | None = None  # told when applied events made SMS fallbacks due
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._stored: list[_Stored] = []
        self._applier: asyncio.Task[None] | None = None

    async def keep(self, item: _Event) -> bool:
        """Store the event; whether it was new (a redelivered one was stored before)."""
        waiting = _Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._store_all(), name="rbm-event-store")
        return await asyncio.shield(waiting.done)

    async def _store_all(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # let pushes already read hand theirs in
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                async with self.db.write() as conn:
                    new, stored = await _store_batch(conn, self.clock, [w.item for w in batch])
            except Exception as exc:
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
                continue
            if stored:
                self._stored.extend(stored)
                if self._applier is None or self._applier.done():
                    self._applier = asyncio.create_task(self._apply_all(), name="rbm-event-apply")
            for waiting, fresh in zip(batch, new, strict=True):
                if not waiting.done.done():
                    waiting.done.set_result(fresh)

    async def _apply_all(self) -> None:
        while self._stored:
            await asyncio.sleep(0)
            batch, self._stored = self._stored[: self.MAX_APPLY], self._stored[self.MAX_APPLY :]
            try:
                async with self.db.write() as conn:
                    applied = await _apply_stored(conn, self.clock, batch, lock=not self.db.is_sqlite)
            except Exception as exc:
                log.warning("rbm_events_not_applied", events=len(batch), error=repr(exc)[:200])
                continue
            if applied.fallbacks and self.wake is not None:
                self.wake()


_batchers: weakref.WeakKeyDictionary[Database, _EventBatcher] = weakref.WeakKeyDictionary()


def _batcher(db: Database, clock: Clock) -> _EventBatcher:
    batcher = _batchers.get(db)
    if batcher is None:
        batcher = _batchers[db] = _EventBatcher(db, clock)
    return batcher


@dataclass(slots=True)
class _Plan:
    """What an event is about, found before it is stored (its row says so)."""

    kind: str
    report: Report | None
    reply_to: Msg | None
    account_id: int | None
    message_id: int | None


async def _plan(conn: AsyncConnection, item: _Event, now: datetime) -> _Plan:
    event = item.event
    phone = getattr(event, "phone", None)
    report = await _report_of(conn, item, now)
    reply_to: Msg | None = None
    account_id: int | None = None
    message_event = isinstance(
        event, rbm_events.Delivered | rbm_events.Read | rbm_events.Revoked | rbm_events.RevokeFailed
    )
    kind = type(event).__name__.lower()
    if report is None and not message_event:
        kind = "usertext" if isinstance(event, rbm_events.Tap) else kind  # a tap we cannot place
        reply_to = await _last_message_to(conn, item.record.name, phone)
        account_id = (
            int(reply_to.account_id) if reply_to is not None else await _only_account(conn, item.record.id)
        )
    message_id = (
        report.message_id if report is not None else (int(reply_to.id) if reply_to is not None else None)
    )
    if message_id is None and message_event:
        message_id = protocol.message_id_of(item.settings.salt, event.message_uuid)  # type: ignore[union-attr]
    return _Plan(kind[:16], report, reply_to, account_id, message_id)


def _stored(row: int, item: _Event, plan: _Plan, now: datetime) -> _Stored:
    phone = getattr(item.event, "phone", None)
    inbound = (
        _Inbound(plan.account_id, phone, plan.reply_to, getattr(item.event, "at", None) or now)
        if plan.report is None and plan.account_id is not None and phone is not None
        else None
    )
    return _Stored(row, item, plan.report, inbound)


async def _store_batch(
    conn: AsyncConnection, clock: Clock, items: list[_Event]
) -> tuple[list[bool], list[_Stored]]:
    """Keep each event under its key: which were new, and the new ones, to apply."""
    now = clock.now()
    planned: list[tuple[_Event, _Plan] | None] = []
    rows: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for item in items:
        mark = (item.record.id, item.key[:128])
        if mark in seen:  # the same event twice in one batch
            planned.append(None)
            continue
        seen.add(mark)
        plan = await _plan(conn, item, now)
        phone = getattr(item.event, "phone", None)
        rows.append(
            {
                "connector_id": item.record.id,
                "event_key": mark[1],
                "kind": plan.kind,
                "account_id": plan.account_id,
                "message_id": plan.message_id,
                "phone": phone[:15] if phone else None,
                "payload": item.data.decode("utf-8", "replace"),
                "received_at": now,
            }
        )
        planned.append((item, plan))
    # One statement keeps them all; a key kept before (Google redelivered it) gets no new row.
    kept = await connector_store.keep_events(conn, rows)
    new: list[bool] = []
    stored: list[_Stored] = []
    for entry in planned:
        row = kept.get((entry[0].record.id, entry[0].key[:128])) if entry is not None else None
        new.append(row is not None)
        if entry is not None and row is not None:
            stored.append(_stored(row, entry[0], entry[1], now))
    return new, stored


async def _apply_stored(
    conn: AsyncConnection, clock: Clock, stored: list[_Stored], *, lock: bool
) -> dispatching.Applied:
    """Apply stored events not applied yet: their reports as one set of moves, their replies as
    inbound webhooks. What the reports changed."""
    now = clock.now()
    mine = await connector_store.mark_applied(conn, [s.row for s in stored])
    todo = [s for s in stored if s.row in mine]
    # The messages are ours and these connectors': the salt in Google's messageId (or the checks on a
    # tap's message) says so. Not their `upstream` column: an event may overtake the submit's
    # answer, and then that is not written yet.
    reports = [s.report for s in todo if s.report is not None]
    applied = (
        await dispatching.record_in(conn, clock, reports=reports, lock=lock)
        if reports
        else dispatching.Applied(0, 0)
    )
    replies = [s for s in todo if s.inbound is not None]
    if replies:
        async with unit_of_work(conn) as unit:
            for stored_reply in replies:
                reply = stored_reply.inbound
                assert reply is not None
                event = stored_reply.item.event
                await enqueue_inbound_webhook(
                    unit,
                    account_id=reply.account_id,
                    event_id=stored_reply.row,
                    channel="rcs",
                    phone=reply.phone,
                    sender=await _agent_name(conn, reply.reply_to),
                    text=getattr(event, "text", None),
                    location=(
                        {"latitude": event.latitude, "longitude": event.longitude}
                        if isinstance(event, rbm_events.UserLocation)
                        else None
                    ),
                    file=(
                        {
                            "mime_type": event.mime_type,
                            "uri": event.uri,
                            "name": event.name,
                            "size": event.size,
                        }
                        if isinstance(event, rbm_events.UserFile)
                        else None
                    ),
                    reply_to=reply.reply_to,
                    at=reply.at,
                    now=now,
                )
    return applied


# Stored events older than this and still unapplied were left by a crash or a failed transaction
# (the live path applies them within milliseconds of their commit).
LEFT_OVER_SECONDS: Final = 10.0


async def apply_left_over(db: Database, clock: Clock, *, limit: int = 500) -> tuple[int, dispatching.Applied]:
    """Apply events stored more than LEFT_OVER_SECONDS ago and not applied yet (one batch of up to
    ``limit``): how many it found, and what they changed. Any process may run it beside the live
    path: an event is applied once (``mark_applied``). An event that can no longer be read (its
    connector changed kind, its payload no longer decodes) is marked applied and changes nothing."""
    now = clock.now()
    before = now - timedelta(seconds=LEFT_OVER_SECONDS)
    # A look first, in a read-only transaction: almost every pass finds nothing, and on SQLite a
    # write transaction would take the process's one writer every few seconds for it.
    async with db.read() as conn:
        if not await connector_store.unapplied_events(conn, received_before=before, limit=1):
            return 0, dispatching.Applied(0, 0)
    async with db.write() as conn:
        rows = await connector_store.unapplied_events(conn, received_before=before, limit=limit)
        if not rows:  # another pass (or the live applier) took them meanwhile
            return 0, dispatching.Applied(0, 0)
        records = await connector_store.get_by_ids(conn, {int(r.connector_id) for r in rows})
        stored: list[_Stored] = []
        for row in rows:
            item = _event_of(records.get(int(row.connector_id)), str(row.event_key), str(row.payload))
            if item is None:
                await connector_store.mark_applied(conn, [int(row.id)])
                continue
            stored.append(_stored(int(row.id), item, await _plan(conn, item, now), now))
        applied = (
            await _apply_stored(conn, clock, stored, lock=not db.is_sqlite)
            if stored
            else dispatching.Applied(0, 0)
        )
    log.info("rbm_events_left_over_applied", events=len(rows), changed=applied.changed)
    return len(rows), applied


def _event_of(record: ConnectorRecord | None, key: str, payload: str) -> _Event | None:
    if record is None or record.kind != "rbm":
        return None
    data = payload.encode("utf-8")
    try:
        event = rbm_events.decode_event(data)
    except ValueError:
        return None
    if isinstance(event, rbm_events.Ignored):
        return None
    return _Event(record, RbmSettings.of(record.config, record.secrets), event, key, data)


async def _report_of(conn: AsyncConnection, item: _Event, now: datetime) -> Report | None:
    """The report an event makes on one of our messages (None: not about one we can place)."""
    event = item.event
    at = getattr(event, "at", None) or now
    match event:
        case rbm_events.Delivered() | rbm_events.Read() | rbm_events.Revoked():
            message_id = protocol.message_id_of(item.settings.salt, event.message_uuid)
            if message_id is None:
                return None
            status: Literal["delivered", "read", "expired"] = (
                "delivered"
                if isinstance(event, rbm_events.Delivered)
                else "read"
                if isinstance(event, rbm_events.Read)
                else "expired"
            )
            return StatusReport(message_id, status, at, upstream=item.record.name)
        case rbm_events.Tap():
            tapped = protocol.parse_postback(event.postback_data)
            if tapped is None:
                return None
            message_id, card, index = tapped
            content = await _content(conn, message_id, item.record.name, event.phone)
            suggestion = suggestion_of(content, card, index) if content is not None else None
            if suggestion is None:
                return None
            return ClickReport(message_id, suggestion[0], suggestion[1], at)
        case _:
            return None


async def _content(
    conn: AsyncConnection, message_id: int, upstream: str, phone: str | None
) -> dict[str, Any] | None:
    """The stored content of our message a tap names, if it went through this connector to this phone."""
    row = (
        await conn.execute(
            select(messages.c.content, messages.c.phone).where(
                messages.c.id == message_id,
                messages.c.type == "rcs",
                # Not yet written when the tap overtakes the submit's answer (pushes come concurrently).
                or_(messages.c.upstream == upstream, messages.c.upstream.is_(None)),
            )
        )
    ).first()
    if row is None or (phone is not None and row.phone != phone):
        return None
    content = json.loads(row.content)
    return content if isinstance(content, dict) else None


async def _last_message_to(conn: AsyncConnection, upstream: str, phone: str | None) -> Msg | None:
    if phone is None:
        return None
    row = (
        await conn.execute(
            select(
                messages.c.id,
                messages.c.account_id,
                messages.c.agent_id,
                messages.c.reference_id,
                messages.c.callback_url,
            )
            .where(
                messages.c.account_id.is_not(None), messages.c.phone == phone, messages.c.upstream == upstream
            )
            .order_by(messages.c.id.desc())
            .limit(1)
        )
    ).first()
    return Msg(dict(row._mapping)) if row is not None else None


async def _only_account(conn: AsyncConnection, connector_id: int) -> int | None:
    """With no message to that phone yet, a reply belongs to the account whose agents use the
    connector, if only one account does."""
    accounts = await connector_store.accounts_routed_to(conn, connector_id)
    return accounts[0] if len(accounts) == 1 else None


async def _agent_name(conn: AsyncConnection, reply_to: Msg | None) -> str | None:
    if reply_to is None or reply_to.get("agent_id") is None:
        return None
    row = (await conn.execute(select(rcs_agents.c.name).where(rcs_agents.c.id == reply_to.agent_id))).first()
    return str(row.name) if row else None
