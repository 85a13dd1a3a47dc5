"""`GET /api/messages`: an account's messages (RCS and their SMS fallbacks), filtered, sorted, paged; and
the console's message log (``search_messages``): the same list, with filters the API does not have."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, cast

import orjson
from sqlalchemy import ColumnElement, and_, func, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound
from rcsgate.domain.message_view import MessageView, shown_amount, shown_fail_reason
from rcsgate.domain.records import Account
from rcsgate.domain.timefmt import parse_ts
from rcsgate.services.lifecycle import SmsPlan
from rcsgate.store import accounts as account_store
from rcsgate.store import message_counts as counts
from rcsgate.store import messages as store
from rcsgate.store.db import Database
from rcsgate.store.tables import messages

MAX_PERIOD = timedelta(days=92)  # "3 months"

Sort = Literal["id", "phone", "delivered"]


@dataclass(frozen=True, slots=True)
class MessageFilter:
    id: int | None = None
    campaign_id: int | None = None
    reference_id: str | None = None
    # A moment, or filter[from] / filter[to] as sent ("yyyy-mm-dd hh:mm:ss" or ISO 8601, without an
    # offset in the account's time zone), read where the account is, in the query's own transaction.
    created_from: datetime | str | None = None
    created_to: datetime | str | None = None


def _moments(where: MessageFilter, tz: str) -> tuple[datetime | None, datetime | None]:
    errors: dict[str, list[str]] = {}
    moments: list[datetime | None] = []
    for name, value in (("filter[from]", where.created_from), ("filter[to]", where.created_to)):
        if isinstance(value, str):
            try:
                value = parse_ts(value, tz)
            except ValueError:
                errors[name] = [f"The {name} does not match the format Y-m-d H:i:s."]
                value = None
        moments.append(value)
    if errors:
        raise InvalidInput(errors)
    return moments[0], moments[1]


def check_period(
    created_from: datetime | None, created_to: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    errors: dict[str, list[str]] = {}
    to = created_to or now
    if created_to is not None and created_to > now:
        errors["filter[to]"] = ["Future dates are not allowed."]
    if created_from is not None and created_from > now:
        errors["filter[from]"] = ["Future dates are not allowed."]
    start = created_from or to - MAX_PERIOD
    if not errors and start > to:
        errors["filter[from]"] = ["The filter[from] must be a date before filter[to]."]
    if not errors and to - start > MAX_PERIOD:
        errors["filter[from]"] = ["The period may not be longer than 3 months."]
    if errors:
        raise InvalidInput(errors)
    return start, to


# What a listed message shows (view() reads these): a page of 500 rows converts far fewer values
# than with every column, eight of them timestamps.
SHOWN = (
    messages.c.id,
    messages.c.reference_id,
    messages.c.type,
    messages.c.phone,
    messages.c.status,
    messages.c.validity_seconds,
    messages.c.price,
    messages.c.charged,
    messages.c.sender,
    messages.c.created_at,
    messages.c.sent_at,
    messages.c.delivered_at,
    messages.c.campaign_id,
    messages.c.country,
    messages.c.content,
    messages.c.parts,
    messages.c.sms_alternative,
    messages.c.fail_reason,
)


def view(row: Row[Any], account: Account, children: list[int]) -> MessageView:
    """A row of SHOWN columns as the API shows it. Unpacked by position: attribute access by name
    costs more than the rest of this function, 500 times per page."""
    (
        id_,
        reference_id,
        type_,
        phone,
        status,
        validity_seconds,
        price,
        charged,
        sender,
        created_at,
        sent_at,
        delivered_at,
        campaign_id,
        country,
        content,
        parts,
        sms_alternative,
        fail_reason,
    ) = cast(tuple[Any, ...], row)
    plan = SmsPlan.from_json(sms_alternative) if sms_alternative else None
    return MessageView(
        id=id_,
        reference_id=reference_id,
        type=type_,
        phone=phone,
        status=status,
        validity_seconds=validity_seconds,
        amount_units=shown_amount(status=status, price=price, charged=charged),
        currency=account.currency,
        sender=sender,
        created_at=created_at,
        sent_at=sent_at,
        delivered_at=delivered_at,
        timezone=account.timezone,
        campaign_id=campaign_id,
        country=country,
        content=orjson.loads(content),
        parts=parts,
        fallback_parts=plan.parts if plan else None,
        fallback_ids=tuple(children),
        fail_reason=shown_fail_reason(status=status, fail_reason=fail_reason),
    )


async def list_messages(
    db: Database,
    clock: Clock,
    *,
    account_id: int,
    where: MessageFilter,
    sort: Sort = "id",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[MessageView], int]:
    page = Page(sort=sort, descending=descending, offset=offset, limit=limit)
    async with db.read() as conn:
        account = await account_store.get_account(conn, account_id)
        if account is None:
            raise NotFound(f"Account {account_id} was not found.")
        start, end = check_period(*_moments(where, account.timezone), clock.now())
        if where.id is None and where.campaign_id is None and where.reference_id is None:
            total, rows = await _period_page(conn, account_id, start, end, page)
        else:
            total, rows = await _filtered_page(conn, account_id, where, start, end, page)
        children = await store.sms_children(conn, [r.id for r in rows if r.sms_alternative])
    return [view(r, account, children.get(r.id, [])) for r in rows], total


@dataclass(frozen=True, slots=True)
class Page:
    sort: Sort
    descending: bool
    offset: int
    limit: int

    def order(self, column: ColumnElement[Any], id_column: ColumnElement[Any]) -> list[ColumnElement[Any]]:
        if self.descending:
            return [column.desc(), id_column.desc()]
        return [column.asc(), id_column.asc()]


_SORT_COLUMNS: dict[Sort, ColumnElement[Any]] = {
    "id": messages.c.id,
    "phone": messages.c.phone,
    "delivered": messages.c.delivered_at,
}

# Up to this many matches a page sorted by phone or delivery time is cheap enough as: the period's
# matches from the created_at index, sorted (about 2 µs a match on SQLite). Sorting costs per match;
# walking the sort column's index costs per row passed, match or not.
SORT_AT_MOST = 10_000


def _opaque(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The column's value in an expression no index can serve (on both engines), to tell the planner
    which of its indexes not to use: the one on this column, for a filter or for the order."""
    return func.coalesce(column, column)


def _within(column: ColumnElement[Any], start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column <= end)


async def _filtered_page(
    conn: AsyncConnection, account_id: int, where: MessageFilter, start: datetime, end: datetime, page: Page
) -> tuple[int, list[Row[Any]]]:
    """filter[id], filter[reference_id] or filter[campaign_id]: at most a campaign's messages (and their
    SMS fallbacks) match, found by the filter's index, then counted and sorted. Neither the period
    nor the sort may take an index: without statistics SQLite would take the created_at one, and
    PostgreSQL would walk the sort index expecting matches to be spread evenly, though a campaign's
    messages are all together. (Both engines choose the same plans with statistics or without.)"""
    conditions = [messages.c.account_id == account_id, _within(_opaque(messages.c.created_at), start, end)]
    if where.id is not None:
        conditions.append(messages.c.id == where.id)
    if where.campaign_id is not None:
        conditions.append(messages.c.campaign_id == where.campaign_id)
    if where.reference_id is not None:
        conditions.append(messages.c.reference_id == where.reference_id)
    total = int(
        (await conn.execute(select(func.count()).select_from(messages).where(*conditions))).scalar_one()
    )
    if total <= page.offset:
        return total, []
    if page.sort == "id" and conn.dialect.name == "sqlite":
        # SQLite's indexes end in the rowid: the filter's index already yields its matches by id.
        order = page.order(messages.c.id, messages.c.id)
    else:
        order = page.order(_opaque(_SORT_COLUMNS[page.sort]), _opaque(messages.c.id))
    query = select(*SHOWN).where(*conditions).order_by(*order).offset(page.offset).limit(page.limit)
    return total, list(await conn.execute(query))


async def _period_page(
    conn: AsyncConnection, account_id: int, start: datetime, end: datetime, page: Page
) -> tuple[int, list[Row[Any]]]:
    """No filter but the period, which may hold a million messages: counted from the day and hour
    counters. The page is read along an index in the sort order: by id from the period's first (or
    last) id; by phone or delivery time when the period holds most of the account's messages, else
    (and for few matches) the period's matches are sorted."""
    counted = await counts.count_period(
        conn, account_id=account_id, start=start, end=end, with_ids=page.sort == "id"
    )
    if counted.total <= page.offset:
        return counted.total, []
    conditions = [messages.c.account_id == account_id]
    if page.sort == "id":
        # The period's messages lie between these ids: the walk along (account_id, id) starts there.
        conditions.append(_within(_opaque(messages.c.created_at), start, end))
        if counted.first_id is not None and counted.last_id is not None:
            conditions.append(messages.c.id.between(counted.first_id, counted.last_id))
        order = page.order(messages.c.id, messages.c.id)
    elif await _walk_sort_index(conn, account_id, counted.total, page):
        conditions.append(_within(_opaque(messages.c.created_at), start, end))
        order = page.order(_SORT_COLUMNS[page.sort], messages.c.id)
    else:
        conditions.append(_within(messages.c.created_at, start, end))
        order = page.order(_opaque(_SORT_COLUMNS[page.sort]), _opaque(messages.c.id))
    if conn.dialect.name == "postgresql":
        # The page is at most 500 rows read along an index, but the planner cannot estimate the
        # opaque period condition, may expect to read far more, and start parallel workers: that
        # alone takes tens of milliseconds on two busy cores.
        await conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    query = select(*SHOWN).where(*conditions).order_by(*order).offset(page.offset).limit(page.limit)
    return counted.total, list(await conn.execute(query))


async def _walk_sort_index(conn: AsyncConnection, account_id: int, matches: int, page: Page) -> bool:
    """Whether to read the page by walking the (account_id, sort column) index, checking each row's
    created_at, rather than by sorting all the period's matches. At worst the walk passes every
    message of the account outside the period before the page's first (the sort order may well
    follow creation time: delivery time does), so it is chosen only when that costs less than sorting
    the matches, i.e. when the period holds most of the account's messages. Passing a row costs well
    under half what sorting one does (SQLite, 505,000 matches by delivery time: 0.34 s walking the
    index past 505,000 others, 1.2 s sorting)."""
    if matches <= SORT_AT_MOST:
        return False
    outside = await counts.account_total(conn, account_id=account_id) - matches
    return outside + page.offset + page.limit <= 2 * matches


# ---------------------------------------------------------------- the console's log

# The log counts the matches of its own filters up to this many, then shows the total as "more than".
COUNT_AT_MOST: Final = 10_000


@dataclass(frozen=True, slots=True)
class ExtraFilter:
    """The console log's filters beyond the API's; None: not given."""

    status: str | None = None
    type: str | None = None  # rcs, or sms (the fallbacks)
    phone: str | None = None  # digits only
    sender: str | None = None  # agent or SMS sender name

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.status, self.type, self.phone, self.sender))


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: list[MessageView]
    total: int
    total_is_lower_bound: bool  # more than COUNT_AT_MOST matched


async def search_messages(
    db: Database,
    clock: Clock,
    *,
    account_id: int,
    where: MessageFilter,
    extra: ExtraFilter,
    offset: int = 0,
    limit: int = 50,
) -> SearchPage:
    """Newest first. Only the API's filters: exactly ``GET /api/messages``'s list (``list_messages``).
    With an extra filter: every filter over the same period, counted up to COUNT_AT_MOST, shown as
    the API shows a message."""
    if not extra.given:
        views, total = await list_messages(
            db, clock, account_id=account_id, where=where, descending=True, offset=offset, limit=limit
        )
        return SearchPage(views, total, False)
    async with db.read() as conn:
        account = await account_store.get_account(conn, account_id)
        if account is None:
            raise NotFound(f"Account {account_id} was not found.")
        start, end = check_period(*_moments(where, account.timezone), clock.now())
        conditions = [
            messages.c.account_id == account_id,
            messages.c.created_at >= start,
            messages.c.created_at <= end,
        ]
        for column, value in (
            (messages.c.id, where.id),
            (messages.c.campaign_id, where.campaign_id),
            (messages.c.reference_id, where.reference_id),
            (messages.c.status, extra.status),
            (messages.c.type, extra.type),
            (messages.c.phone, extra.phone),
            (messages.c.sender, extra.sender),
        ):
            if value is not None:
                conditions.append(column == value)
        matching = select(messages.c.id).where(and_(*conditions)).limit(COUNT_AT_MOST + 1).subquery()
        counted = int((await conn.execute(select(func.count()).select_from(matching))).scalar_one())
        query = select(*SHOWN).where(*conditions).order_by(messages.c.id.desc()).offset(offset).limit(limit)
        rows: list[Row[Any]] = list(await conn.execute(query))
        children = await store.sms_children(conn, [r.id for r in rows if r.sms_alternative])
    views = [view(r, account, children.get(r.id, [])) for r in rows]
    return SearchPage(views, min(counted, COUNT_AT_MOST), counted > COUNT_AT_MOST)


async def shown_rows(conn: AsyncConnection, ids: list[int]) -> list[Row[Any]]:
    """The SHOWN columns of these messages (any account's: the caller checks), by id."""
    if not ids:
        return []
    query = select(*SHOWN).where(messages.c.id.in_(ids)).order_by(messages.c.id)
    return list(await conn.execute(query))
