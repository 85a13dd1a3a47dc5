"""Exact message counts over a period, from the per-day counters (tables.message_day_counts).

A period [start, end] splits into the UTC days wholly inside it, counted from their counters, and
at most two partial days at its ends, counted from the (account_id, created_at) index: whatever the
period's length, at most about one day of index entries is read, plus one counter row per day
(a few per day on PostgreSQL, until they are folded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, cast, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.tables import message_day_counts as counts
from rcsgate.store.tables import messages

_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)  # the resolution of stored times on both engines


@dataclass(frozen=True, slots=True)
class PeriodCount:
    """How many of an account's messages were created in a period, and (when asked for, and there are
    any) bounds on their ids: every one has first_id <= id <= last_id."""

    total: int
    first_id: int | None = None
    last_id: int | None = None


@dataclass(frozen=True, slots=True)
class Split:
    """A period as whole days [first_day, last_day] (None when there are none) and partial ends."""

    whole: tuple[date, date] | None
    # (from, to, to_inclusive): created_at >= from and created_at < to (<= to when inclusive).
    ends: tuple[tuple[datetime, datetime, bool], ...]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def split(start: datetime, end: datetime) -> Split:
    """The whole UTC days inside [start, end] (both inclusive) and the partial days around them."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.date() if start == _midnight(start.date()) else start.date() + _DAY
    # The first day that is not wholly inside: end is inclusive, so a day ending at end + one tick is.
    after = (end + _TICK).date()
    last = after - _DAY
    if first > last:
        return Split(None, ((start, end, True),))
    ends: list[tuple[datetime, datetime, bool]] = []
    if start < _midnight(first):
        ends.append((start, _midnight(first), False))
    if _midnight(after) <= end:
        ends.append((_midnight(after), end, True))
    return Split((first, last), tuple(ends))


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
    their ids (exactly, from the partial days; by whole days' min/max otherwise). One statement, so
    one snapshot on PostgreSQL too."""
    parts = split(start, end)
    selects = [_edge(account_id, lo, hi, inclusive, with_ids) for lo, hi, inclusive in parts.ends]
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
