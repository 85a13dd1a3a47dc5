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
    if moment is None:
        return None
    return moment.astimezone(zone(tz)).strftime(FORMAT)


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
