"""One message with everything the console's message page shows of it: the message as the API shows
it (``message_queries.view``), its price and reservation, its SMS fallback plan and the fallbacks
sent, its status changes, and the webhooks about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from rcsgate.domain.errors import NotFound
from rcsgate.domain.message_view import MessageView
from rcsgate.services import message_queries
from rcsgate.services.lifecycle import SmsPlan
from rcsgate.services.webhook_log import DeliveryView, delivery_view
from rcsgate.store import accounts as account_store
from rcsgate.store import messages as store
from rcsgate.store import webhook_log as webhook_store
from rcsgate.store.db import Database

MESSAGE_NOT_FOUND: Final = "Message was not found."


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    from_status: str | None
    status: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class MessageDetail:
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
    webhooks: list[DeliveryView] = field(default_factory=list)


async def message_detail(db: Database, *, account_id: int, message_id: int) -> MessageDetail:
    """NotFound for another account's (or no) message, as the API answers."""
    async with db.read() as conn:
        account = await account_store.get_account(conn, account_id)
        row = await store.get(conn, message_id, account_id=account_id)
        if account is None or row is None:
            raise NotFound(MESSAGE_NOT_FOUND)
        child_ids = (await store.sms_children(conn, [message_id])).get(message_id, [])
        shown = {r.id: r for r in await message_queries.shown_rows(conn, [message_id, *child_ids])}
        events = [
            Event(at=e.at, from_status=e.from_status, status=e.status, detail=e.detail)
            for e in await store.events_of(conn, message_id)
        ]
        hooks = await webhook_store.for_message(conn, account_id=account_id, message_id=message_id)
    return MessageDetail(
        view=message_queries.view(shown[message_id], account, child_ids),
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
        fallbacks=[message_queries.view(shown[i], account, []) for i in child_ids],
        webhooks=[delivery_view(w) for w in hooks],
    )
