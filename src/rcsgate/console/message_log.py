"""The console's message log: its filter form read and checked, then searched by
``services.message_queries.search_messages``, which answers exactly ``GET /api/messages``'s list when
only the API's filters (id, campaign, reference, period) are given, and applies the console's own
(status, channel, phone, agent) over the same columns otherwise. (A message's page is
``services.message_detail``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.message_states import STATUSES
from rcsgate.domain.message_view import MessageView
from rcsgate.domain.phones import normalize_phone
from rcsgate.domain.timefmt import parse_ts
from rcsgate.services import message_queries
from rcsgate.services.accounts import get_account
from rcsgate.store.db import Database

PAGE_SIZE: Final = 50
CHANNELS: Final = ("rcs", "sms")


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
    tz = (await get_account(db, account_id)).timezone
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
    found = await message_queries.search_messages(
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
        extra=message_queries.ExtraFilter(
            status=where.status or None,
            type=where.channel or None,
            phone=phone,
            sender=where.agent.strip() or None,
        ),
        offset=offset,
        limit=limit,
    )
    return LogPage(found.items, found.total, found.total_is_lower_bound, offset, limit, tz)
