"""Events an upstream pushes to us (Google RBM's webhook), applied exactly once.

Each event is stored under the upstream's own id (``upstream_events``) in the transaction that
applies it, and the HTTP answer goes out only after that commit: Google retries anything it did
not get a 200 for (for 7 days), so nothing is lost, and a redelivered event finds its id taken
and changes nothing. Delivery, read and revocation events are reports on our messages; a tap on a
suggestion is a click webhook with the customer's own postback; user replies (text, location,
file) are posted to the account as ``inbound`` webhooks.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
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
    fallbacks: int = 0  # SMS alternatives the batch holding the event made due


def _json(status: int, message: str, **extra: Any) -> Answer:
    return Answer(status, json.dumps({"message": message, **extra}))


async def rbm_push(db: Database, clock: Clock, *, name: str, body: bytes, signature: str | None) -> Answer:
    """Handle one POST from Google to ``/api/upstream/rbm/{name}``."""
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
    new, applied = await _batcher(db, clock).apply(_Event(record, settings, event, key, data))
    return Answer(200, _OK_NEW if new else _OK_SEEN, fallbacks=applied.fallbacks)


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
    done: asyncio.Future[tuple[bool, dispatching.Applied]]


class _EventBatcher:
    """Events from concurrent pushes, applied together: Google (and the local RBM) keep several
    pushes in flight, and one transaction for what has queued costs far less than one each. Every
    push is answered only after the transaction holding its event has committed; if it fails, every
    push of the batch gets the error (a 5xx: Google pushes them again)."""

    MAX_BATCH = 500

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def apply(self, item: _Event) -> tuple[bool, dispatching.Applied]:
        waiting = _Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="rbm-event-batcher")
        return await asyncio.shield(waiting.done)

    async def _write_all(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # let pushes already read hand theirs in
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                async with self.db.write() as conn:
                    new, applied = await _apply_batch(
                        conn, self.clock, [w.item for w in batch], lock=not self.db.is_sqlite
                    )
            except Exception as exc:
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
                continue
            for waiting, fresh in zip(batch, new, strict=True):
                if not waiting.done.done():
                    waiting.done.set_result((fresh, applied))


_batchers: weakref.WeakKeyDictionary[Database, _EventBatcher] = weakref.WeakKeyDictionary()


def _batcher(db: Database, clock: Clock) -> _EventBatcher:
    batcher = _batchers.get(db)
    if batcher is None:
        batcher = _batchers[db] = _EventBatcher(db, clock)
    return batcher


@dataclass(slots=True)
class _Inbound:
    item: _Event
    account_id: int
    event_row: int
    phone: str
    reply_to: Msg | None
    at: datetime


async def _apply_batch(
    conn: AsyncConnection, clock: Clock, items: list[_Event], *, lock: bool
) -> tuple[list[bool], dispatching.Applied]:
    """Keep each event under its key and apply the new ones: their reports as one set of moves, their
    replies as inbound webhooks. Which events were new, and what the reports changed."""
    now = clock.now()
    reports: list[Report] = []
    inbound: list[_Inbound] = []
    planned: list[tuple[_Event, Report | None, Msg | None, int | None] | None] = []
    rows: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for item in items:
        mark = (item.record.id, item.key[:128])
        if mark in seen:  # the same event twice in one batch
            planned.append(None)
            continue
        seen.add(mark)
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
                int(reply_to.account_id)
                if reply_to is not None
                else await _only_account(conn, item.record.id)
            )
        message_id = (
            report.message_id if report is not None else (int(reply_to.id) if reply_to is not None else None)
        )
        if message_id is None and message_event:
            message_id = protocol.message_id_of(item.settings.salt, event.message_uuid)  # type: ignore[union-attr]
        rows.append(
            {
                "connector_id": item.record.id,
                "event_key": mark[1],
                "kind": kind[:16],
                "account_id": account_id,
                "message_id": message_id,
                "phone": phone[:15] if phone else None,
                "payload": item.data.decode("utf-8", "replace"),
                "received_at": now,
            }
        )
        planned.append((item, report, reply_to, account_id))
    # One statement keeps them all; a key kept before (Google redelivered it) gets no new row.
    kept = await connector_store.keep_events(conn, rows)
    new: list[bool] = []
    for entry in planned:
        if entry is None:
            new.append(False)
            continue
        item, report, reply_to, account_id = entry
        event_row = kept.get((item.record.id, item.key[:128]))
        new.append(event_row is not None)
        if event_row is None:
            continue
        phone = getattr(item.event, "phone", None)
        if report is not None:
            reports.append(report)
        elif account_id is not None and phone is not None:
            at = getattr(item.event, "at", None) or now
            inbound.append(_Inbound(item, account_id, event_row, phone, reply_to, at))
    # The messages are ours and these connectors': the salt in Google's messageId (or the checks on a
    # tap's message) says so. Not their `upstream` column: an event may overtake the submit's
    # answer, and then that is not written yet.
    applied = await dispatching.record_in(conn, clock, reports=reports, lock=lock)
    if inbound:
        async with unit_of_work(conn) as unit:
            for reply in inbound:
                event = reply.item.event
                await enqueue_inbound_webhook(
                    unit,
                    account_id=reply.account_id,
                    event_id=reply.event_row,
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
    return new, applied


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
