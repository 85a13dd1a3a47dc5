"""The contract's timestamp format ("yyyy-mm-dd hh:mm:ss"), rendered in the account's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
    if moment.tzinfo is UTC:
        if tz == "UTC":
            return moment.isoformat(" ")[:19]
        # The zone's offset, looked up once per hour of UTC time rather than per timestamp.
        offset = _hour_offset(tz, moment.replace(minute=0, second=0, microsecond=0))
        if offset is not None:
            return (moment + offset).isoformat(" ")[:19]
    return moment.astimezone(zone(tz)).isoformat(" ")[:19]


@lru_cache(maxsize=4096)
def _hour_offset(tz: str, hour: datetime) -> timedelta | None:
    """The zone's UTC offset throughout this hour of UTC time, or None if it changes within it. Equal
    offsets at the hour's first and last microsecond mean one offset throughout: a zone's offset never
    changes twice within an hour."""
    local = zone(tz)
    first = hour.astimezone(local).utcoffset()
    last = (hour + _ALMOST_AN_HOUR).astimezone(local).utcoffset()
    return first if first == last else None


_ALMOST_AN_HOUR = timedelta(hours=1, microseconds=-1)


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
