"""The console's message log and message page: reads of an account's messages, their events, fallbacks and
webhook deliveries.

The API's own filters (id, campaign, reference, period) go through ``services.message_queries`` exactly
as ``GET /api/messages`` does. The console's extra filters (status, channel, phone, agent) are applied
here, over the same columns and with the same view of a row (``message_queries.view``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Row

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound
from rcsgate.domain.message_states import STATUSES
from rcsgate.domain.message_view import MessageView
from rcsgate.domain.phones import normalize_phone
from rcsgate.domain.timefmt import parse_ts
from rcsgate.services import message_queries
from rcsgate.services.lifecycle import SmsPlan
from rcsgate.store import accounts as account_store
from rcsgate.store import messages as message_store
from rcsgate.store.db import Database
from rcsgate.store.tables import message_events, messages, webhook_deliveries

PAGE_SIZE: Final = 50
# Beyond this many matches of the console's own filters the total is shown as "more than".
COUNT_AT_MOST: Final = 10_000
CHANNELS: Final = ("rcs", "sms")
MESSAGE_NOT_FOUND: Final = "Message was not found."


@dataclass(frozen=True, slots=True)
class LogFilter:
    """The log's filters as the form sends them (strings; empty means not given)."""

    id: str = ""
    campaign_id: str = ""
    reference_id: str = ""
    created_from: str = ""
    created_to: str = ""
    status: str = ""
    channel: str = ""
    phone: str = ""
    agent: str = ""

    @property
    def extra(self) -> bool:
        """Whether a filter the API does not have is set."""
        return bool(self.status or self.channel or self.phone or self.agent)

    def query(self) -> dict[str, str]:
        return {k: v for k, v in _items(self) if v}


def _items(where: LogFilter) -> list[tuple[str, str]]:
    return [(name, getattr(where, name)) for name in LogFilter.__slots__]


@dataclass(frozen=True, slots=True)
class LogPage:
    items: list[MessageView]
    total: int
    total_is_lower_bound: bool
    offset: int
    limit: int
    timezone: str


def _int_field(errors: dict[str, list[str]], name: str, value: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 2**63 - 1:
        errors[name] = [f"The {name.replace('_', ' ')} must be a positive integer."]
        return None
    return int(text)


def _moment(errors: dict[str, list[str]], name: str, value: str, tz: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        # A datetime-local input sends "2026-01-01T12:00": ISO 8601 without offset, a wall time where
        # the account is, as the API reads filter[from] / filter[to].
        return parse_ts(value, tz)
    except ValueError:
        errors[name] = [f"The {name.replace('_', ' ')} is not a date and time."]
        return None


async def message_log(
    db: Database, clock: Clock, *, account_id: int, where: LogFilter, offset: int = 0, limit: int = PAGE_SIZE
) -> LogPage:
    """Newest first. InvalidInput names every form field at fault."""
    async with db.read() as conn:
        account = await account_store.get_account(conn, account_id)
    if account is None:
        raise NotFound(f"Account {account_id} was not found.")
    tz = account.timezone
    errors: dict[str, list[str]] = {}
    message_id = _int_field(errors, "id", where.id)
    campaign_id = _int_field(errors, "campaign_id", where.campaign_id)
    reference_id = where.reference_id.strip() or None
    if reference_id is not None and len(reference_id) > 32:
        errors["reference_id"] = ["The reference id may not be greater than 32 characters."]
    if where.status and where.status not in STATUSES:
        errors["status"] = ["The selected status is invalid."]
    if where.channel and where.channel not in CHANNELS:
        errors["channel"] = ["The selected channel is invalid."]
    phone = normalize_phone(where.phone.strip()) if where.phone.strip() else None
    if where.phone.strip() and phone is None:
        errors["phone"] = ["The phone must be 9 to 15 digits, country code first."]
    created_from = _moment(errors, "created_from", where.created_from, tz)
    created_to = _moment(errors, "created_to", where.created_to, tz)
    if errors:
        raise InvalidInput(errors)
    if not where.extra:
        views, total = await message_queries.list_messages(
            db,
            clock,
            account_id=account_id,
            where=message_queries.MessageFilter(
                id=message_id,
                campaign_id=campaign_id,
                reference_id=reference_id,
                created_from=created_from,
                created_to=created_to,
            ),
            descending=True,
            offset=offset,
            limit=limit,
        )
        return LogPage(views, total, False, offset, limit, tz)
    start, end = message_queries.check_period(created_from, created_to, clock.now())
    conditions: list[Any] = [
        messages.c.account_id == account_id,
        messages.c.created_at >= start,
        messages.c.created_at <= end,
    ]
    if message_id is not None:
        conditions.append(messages.c.id == message_id)
    if campaign_id is not None:
        conditions.append(messages.c.campaign_id == campaign_id)
    if reference_id is not None:
        conditions.append(messages.c.reference_id == reference_id)
    if where.status:
        conditions.append(messages.c.status == where.status)
    if where.channel:
        conditions.append(messages.c.type == where.channel)
    if phone is not None:
        conditions.append(messages.c.phone == phone)
    if where.agent.strip():
        conditions.append(messages.c.sender == where.agent.strip())
    matching = select(messages.c.id).where(and_(*conditions)).limit(COUNT_AT_MOST + 1).subquery()
    async with db.read() as conn:
        counted = int((await conn.execute(select(func.count()).select_from(matching))).scalar_one())
        rows: list[Row[Any]] = list(
            await conn.execute(
                select(*message_queries.SHOWN)
                .where(*conditions)
                .order_by(messages.c.id.desc())
                .offset(offset)
                .limit(limit)
            )
        )
        children = await message_store.sms_children(conn, [r.id for r in rows if r.sms_alternative])
    views = [message_queries.view(r, account, children.get(r.id, [])) for r in rows]
    return LogPage(views, min(counted, COUNT_AT_MOST), counted > COUNT_AT_MOST, offset, limit, tz)


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    from_status: str | None
    status: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    id: int
    kind: str
    url: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    body: str


@dataclass(frozen=True, slots=True)
class MessagePage:
    view: MessageView
    timezone: str
    events: list[Event]
    price_units: int
    reserved_units: int
    charged_units: int
    kind: str
    expires_at: datetime | None
    upstream: str | None
    callback_url: str | None
    parent_id: int | None
    sms_plan: SmsPlan | None
    fallbacks: list[MessageView] = field(default_factory=list)
    webhooks: list[WebhookAttempt] = field(default_factory=list)


async def message_page(db: Database, *, account_id: int, message_id: int) -> MessagePage:
    """One of the account's messages with everything the console shows of it; NotFound for another
    account's (or no) message, as the API answers."""
    async with db.read() as conn:
        account = await account_store.get_account(conn, account_id)
        row = (
            await conn.execute(
                select(messages).where(messages.c.id == message_id, messages.c.account_id == account_id)
            )
        ).first()
        if account is None or row is None:
            raise NotFound(MESSAGE_NOT_FOUND)
        shown: list[Row[Any]] = list(
            await conn.execute(select(*message_queries.SHOWN).where(messages.c.id == message_id))
        )
        children = await message_store.sms_children(conn, [message_id])
        child_ids = children.get(message_id, [])
        fallback_rows: list[Row[Any]] = (
            list(
                await conn.execute(
                    select(*message_queries.SHOWN).where(messages.c.id.in_(child_ids)).order_by(messages.c.id)
                )
            )
            if child_ids
            else []
        )
        events = [
            Event(at=e.at, from_status=e.from_status, status=e.status, detail=e.detail)
            for e in await conn.execute(
                select(message_events)
                .where(message_events.c.message_id == message_id)
                .order_by(message_events.c.at, message_events.c.id)
            )
        ]
        hooks = [
            WebhookAttempt(
                id=w.id,
                kind=w.kind,
                url=w.url,
                status=w.status,
                attempts=w.attempts,
                last_status_code=w.last_status_code,
                last_error=w.last_error,
                created_at=w.created_at,
                next_attempt_at=w.next_attempt_at,
                delivered_at=w.delivered_at,
                body=w.body,
            )
            for w in await conn.execute(
                select(webhook_deliveries)
                .where(
                    webhook_deliveries.c.account_id == account_id,
                    webhook_deliveries.c.message_id == message_id,
                )
                .order_by(webhook_deliveries.c.id)
            )
        ]
    view = message_queries.view(shown[0], account, child_ids)
    return MessagePage(
        view=view,
        timezone=account.timezone,
        events=events,
        price_units=int(row.price),
        reserved_units=int(row.reserved),
        charged_units=int(row.charged),
        kind=str(row.kind),
        expires_at=row.expires_at,
        upstream=row.upstream,
        callback_url=row.callback_url,
        parent_id=row.parent_id,
        sms_plan=SmsPlan.from_json(row.sms_alternative) if row.sms_alternative else None,
        fallbacks=[message_queries.view(r, account, []) for r in fallback_rows],
        webhooks=hooks,
    )
