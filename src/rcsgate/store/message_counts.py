"""Exact message counts over a period, from per-day and per-hour counters (tables.message_day_counts,
message_hour_counts).

A period [start, end] splits into the UTC days wholly inside it, counted from their day counters;
in the partial days at its ends, the whole hours inside it, counted from their hour counters; and
at most two partial hours at its ends, counted from the (account_id, created_at) index. Whatever
the period's length, at most about two hours of index entries are read, plus one counter row per
day and per hour (a few per day or hour on PostgreSQL, until they are folded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, cast, func, literal, null, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.tables import message_day_counts as counts
from rcsgate.store.tables import message_hour_counts as hour_counts
from rcsgate.store.tables import messages

_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)  # the resolution of stored times on both engines
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PeriodCount:
    """How many of an account's messages were created in a period, and (when asked for, and there are
    any) bounds on their ids: every one has first_id <= id <= last_id."""

    total: int
    first_id: int | None = None
    last_id: int | None = None


# (from, to, to_inclusive): created_at >= from and created_at < to (<= to when inclusive).
Range = tuple[datetime, datetime, bool]


@dataclass(frozen=True, slots=True)
class Split:
    """A period as whole days [first_day, last_day] (None when there are none), runs of whole hours
    [first_hour, last_hour] in the partial days (hours since the epoch, UTC), and partial ends."""

    whole: tuple[date, date] | None
    ends: tuple[Range, ...]
    hours: tuple[tuple[int, int], ...] = ()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def hour_of(at: datetime) -> int:
    """The UTC hour holding ``at``, as hours since the epoch (what the hour counters store)."""
    return (at.astimezone(UTC) - _EPOCH) // _HOUR


def _carve(
    lo: datetime, hi: datetime, inclusive: bool, floor: Callable[[datetime], datetime], step: timedelta
) -> tuple[tuple[datetime, datetime] | None, list[Range]]:
    """The whole units [first, last] (their starts; units of ``step``, aligned by ``floor``) inside
    the range, and what is left of it at either side."""
    first = lo if floor(lo) == lo else floor(lo) + step
    # The first unit not wholly inside: a unit ending right after hi (inclusive) still is.
    after = floor(hi + _TICK) if inclusive else floor(hi)
    if first >= after:
        return None, [(lo, hi, inclusive)]
    rest: list[Range] = []
    if lo < first:
        rest.append((lo, first, False))
    if after < hi or (inclusive and after == hi):
        rest.append((after, hi, inclusive))
    return (first, after - step), rest


def _floor_day(at: datetime) -> datetime:
    return _midnight(at.date())


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def split(start: datetime, end: datetime) -> Split:
    """The whole UTC days inside [start, end] (both inclusive), the whole hours inside the partial
    days around them, and the partial hours left at the ends."""
    days, partial = _carve(start.astimezone(UTC), end.astimezone(UTC), True, _floor_day, _DAY)
    hours: list[tuple[int, int]] = []
    ends: list[Range] = []
    for lo, hi, inclusive in partial:
        run, rest = _carve(lo, hi, inclusive, _floor_hour, _HOUR)
        if run is not None:
            hours.append((hour_of(run[0]), hour_of(run[1])))
        ends += rest
    whole = (days[0].date(), days[1].date()) if days is not None else None
    return Split(whole, tuple(ends), tuple(hours))


def _edge(account_id: int, lo: datetime, hi: datetime, inclusive: bool, with_ids: bool) -> Select[Any]:
    upper = messages.c.created_at <= hi if inclusive else messages.c.created_at < hi
    ids: list[ColumnElement[Any]] = (
        [func.min(messages.c.id), func.max(messages.c.id)] if with_ids else [cast(null(), BigInteger)] * 2
    )
    return select(func.count(), *ids).where(
        messages.c.account_id == account_id, messages.c.created_at >= lo, upper
    )


async def count_period(
    conn: AsyncConnection, *, account_id: int, start: datetime, end: datetime, with_ids: bool = False
) -> PeriodCount:
    """The account's messages with start <= created_at <= end, counted exactly; with_ids also bounds
    their ids (exactly, from the partial hours; by whole days' and hours' min/max otherwise). One
    statement, so one snapshot on PostgreSQL too."""
    parts = split(start, end)
    selects = [_edge(account_id, lo, hi, inclusive, with_ids) for lo, hi, inclusive in parts.ends]
    if parts.hours:
        selects.append(
            select(
                func.coalesce(func.sum(hour_counts.c.count), literal(0)),
                func.min(hour_counts.c.min_id),
                func.max(hour_counts.c.max_id),
            ).where(
                hour_counts.c.account_id == account_id,
                or_(*(hour_counts.c.hour.between(first, last) for first, last in parts.hours)),
            )
        )
    if parts.whole is not None:
        first, last = parts.whole
        selects.append(
            select(
                func.coalesce(func.sum(counts.c.count), literal(0)),
                func.min(counts.c.min_id),
                func.max(counts.c.max_id),
            ).where(counts.c.account_id == account_id, counts.c.day >= first, counts.c.day <= last)
        )
    query = selects[0] if len(selects) == 1 else union_all(*selects)
    total, first_id, last_id = 0, None, None
    for n, lo, hi in await conn.execute(query):
        total += int(n or 0)
        if lo is not None:
            first_id = int(lo) if first_id is None else min(first_id, int(lo))
        if hi is not None:
            last_id = int(hi) if last_id is None else max(last_id, int(hi))
    if not with_ids or total == 0:
        return PeriodCount(total)
    return PeriodCount(total, first_id, last_id)


async def account_total(conn: AsyncConnection, *, account_id: int) -> int:
    """All the account's messages, ever (one counter row per day with messages)."""
    query = select(func.coalesce(func.sum(counts.c.count), literal(0))).where(
        counts.c.account_id == account_id
    )
    return int((await conn.execute(query)).scalar_one())
