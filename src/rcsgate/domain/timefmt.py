"""The contract's timestamp format ("yyyy-mm-dd hh:mm:ss"), rendered in the account's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FORMAT = "%Y-%m-%d %H:%M:%S"


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def format_ts(moment: datetime | None, tz: str = "UTC") -> str | None:
    # isoformat's first 19 characters are FORMAT (for years from 1000 on) at a third of strftime's
    # cost — paid 1500 times for a page of 500 messages; a stored time is already in UTC.
    if moment is None:
        return None
    if tz != "UTC" or moment.tzinfo is not UTC:
        moment = moment.astimezone(zone(tz))
    return moment.isoformat(" ")[:19]


def parse_ts(text: str, tz: str = "UTC") -> datetime:
    """Parse "yyyy-mm-dd hh:mm:ss" or ISO 8601; a time without offset is in the account's zone."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError("must be a date like 2025-01-25 09:00:00") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(tz))
    return moment.astimezone(UTC)
