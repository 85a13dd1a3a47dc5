"""Set-based statements of the message pipeline: claiming a batch, reading the state of a batch,
compare-and-set moves of many messages at once, and taking back lapsed claims.

A batch's moves are one statement per (status before, status after) instead of one per message:
the per-statement cost (SQLAlchemy, driver, round trip) is what bounds the pipeline, not the rows.
Each move is still a compare-and-set on the old status, and only the messages it really moved are
reported back, so the caller writes events, money and webhooks for exactly those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ARRAY, any_, bindparam, func, literal_column, select, text, update
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import TextClause

from rcsgate.store import bulk
from rcsgate.store.tables import accounts, ledger_entries, message_events, messages

# What a state change reads: every column but the content, which can be a large carousel and is
# only needed to submit.
STATE_COLUMNS = tuple(c for c in messages.c if c.name != "content")
# What a submit needs.
OUTBOUND_COLUMNS = (
    messages.c.id,
    messages.c.type,
    messages.c.phone,
    messages.c.sender,
    messages.c.content,
    messages.c.expires_at,
    messages.c.agent_id,
    messages.c.account_id,
    messages.c.attempts,
)


# The conditions of the sweeps' partial indexes (tables.EXPIRING_CONDITION, SENDING_CONDITION) as
# literals: with bound parameters neither SQLite nor a generic PostgreSQL plan could prove that the
# index applies.
SENDING = messages.c.status == literal_column("'sending'")
EXPIRING = messages.c.status.in_([literal_column("'accepted'"), literal_column("'sent'")])

_CANDIDATE_COLUMNS = (
    messages.c.id,
    messages.c.account_id,
    messages.c.campaign_id,
    messages.c.agent_id,
    messages.c.price,
    messages.c.reserved,
    messages.c.sms_alternative,
    messages.c.priority,
    messages.c.due_at,
)


async def due_candidates(
    conn: AsyncConnection, *, now: datetime, limit: int, skip_locked: bool, sms: bool = True
) -> list[Row[Any]]:
    """Due `accepted` messages, single sends before campaign traffic, oldest first (locked on
    PostgreSQL, skipping those another worker holds).

    Not one ORDER BY priority, due_at over every due message: that sorts the whole backlog for each
    claim (26 ms per claim of 200 at 100,000 waiting campaign messages on SQLite, more than the
    rest of the claim). Single sends (priority 0) are the messages without a campaign: few are
    waiting at any time, and the campaign index finds them, one seek per type. The rest, campaign
    traffic (whose messages, fallbacks included, share one priority), comes in (status, due_at, id)
    index order, so the read stops at the limit. Without ``sms``, SMS messages are left for the
    process that holds the SMPP binds."""
    rows: list[Row[Any]] = []
    for kind in ("rcs", "sms") if sms else ("rcs",):
        singles = (
            select(*_CANDIDATE_COLUMNS)
            .where(
                messages.c.campaign_id.is_(None),
                messages.c.type == kind,
                messages.c.status == "accepted",
                # Not a bare due_at range: without statistics SQLite would prefer (status, due_at).
                func.coalesce(messages.c.due_at, messages.c.due_at) <= now,
            )
            .order_by(messages.c.priority, messages.c.due_at, messages.c.id)
            .limit(limit)
        )
        rows += await conn.execute(_lock(singles, skip_locked))
    rows.sort(key=lambda r: (r.priority, r.due_at, r.id))
    rows = rows[:limit]
    if len(rows) < limit:
        campaign = (
            select(*_CANDIDATE_COLUMNS)
            .where(
                messages.c.status == "accepted",
                messages.c.due_at <= now,
                messages.c.campaign_id.is_not(None),
            )
            .order_by(messages.c.due_at, messages.c.id)
            .limit(limit - len(rows))
        )
        if not sms:
            campaign = campaign.where(messages.c.type == "rcs")
        rows += await conn.execute(_lock(campaign, skip_locked))
    return rows


def _lock(query: Select[Any], skip_locked: bool) -> Select[Any]:
    return query.with_for_update(skip_locked=True) if skip_locked else query


async def has_pending(conn: AsyncConnection, campaign_id: int) -> bool:
    """Whether the campaign has messages still to send (scheduled, accepted or sending): a few seeks
    in the (campaign_id, type, status) index, not a count over every message of the campaign."""
    query = (
        select(messages.c.id)
        .where(
            messages.c.campaign_id == campaign_id,
            messages.c.type.in_(("rcs", "sms")),
            messages.c.status.in_(("scheduled", "accepted", "sending")),
        )
        .limit(1)
    )
    return (await conn.execute(query)).first() is not None


async def states(conn: AsyncConnection, ids: Sequence[int], *, for_update: bool) -> dict[int, Row[Any]]:
    """The messages' rows (without content), locked in id order on PostgreSQL so that two
    transactions locking overlapping batches cannot deadlock."""
    if not ids:
        return {}
    postgresql = conn.dialect.name == "postgresql"
    query = _STATES[postgresql, for_update]
    return {int(r.id): r for r in await conn.execute(query, {"ids": list(ids)})}


def _states_query(postgresql: bool, for_update: bool) -> Select[Any]:
    # Built once: building this select (36 columns) and its cache key cost ~95 µs a call, paid by every
    # transaction that records answers or applies reports. On PostgreSQL ``= ANY`` of one array, so
    # the text (and asyncpg's prepared statement) is the same whatever the batch's size.
    ids = (
        messages.c.id == any_(bindparam("ids", type_=ARRAY(messages.c.id.type)))
        if postgresql
        else messages.c.id.in_(bindparam("ids", expanding=True))
    )
    query = select(*STATE_COLUMNS).where(ids).order_by(messages.c.id)
    return query.with_for_update() if for_update else query


_STATES: Final = {(pg, lock): _states_query(pg, lock) for pg in (False, True) for lock in (False, True)}


async def mark_sending(
    conn: AsyncConnection,
    *,
    ids: list[int],
    now: datetime,
    lease_until: datetime,
    reserve: Mapping[int, int] | None = None,
    holder: int | None = None,
) -> list[Row[Any]]:
    """Claim `accepted` messages (compare-and-set) for ``holder`` (dispatch/liveness.py) with their
    events, adding ``reserve``'s amounts to what the messages hold (their funds reserved on the
    account by ``reserve_funds`` in the same transaction); returns what a submit needs."""
    if not ids:
        return []
    amounts = reserve or {}
    if conn.dialect.name == "postgresql":
        # One statement that also sets each message's reservation: on PostgreSQL every UPDATE of
        # a message writes a new row version and an entry in each of its indexes.
        claimed = await conn.execute(
            _PG_CLAIM,
            {
                "lease": lease_until,
                "holder": holder,
                "ids": ids,
                "amounts": [amounts.get(mid, 0) for mid in ids],
            },
        )
        rows = list(claimed)
    else:
        claimed = await conn.execute(
            update(messages)
            .where(messages.c.id.in_(ids), messages.c.status == "accepted")
            .values(
                status="sending",
                lease_until=lease_until,
                holder_id=holder,
                attempts=messages.c.attempts + 1,
            )
            .returning(*OUTBOUND_COLUMNS)
        )
        rows = list(claimed)
        if amounts:
            await conn.exec_driver_sql(
                "UPDATE messages SET reserved = reserved + ? WHERE id = ?",
                [(amount, mid) for mid, amount in amounts.items()],
            )
    await _events(conn, [int(r.id) for r in rows], old="accepted", new="sending", at=now, detail=None)
    return rows


_PG_CLAIM = (
    text(
        "UPDATE messages AS m SET status = 'sending', lease_until = :lease, holder_id = :holder, "
        "attempts = m.attempts + 1, "
        "reserved = m.reserved + v.amount "
        "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:amounts AS BIGINT[])) AS v(id, amount) "
        "WHERE m.id = v.id AND m.status = 'accepted' "
        "RETURNING m.id, m.type, m.phone, m.sender, m.content, m.expires_at, m.agent_id, m.account_id, "
        "m.attempts"
    )
    .bindparams(
        bindparam("lease", type_=messages.c.lease_until.type),
        bindparam("holder", type_=messages.c.holder_id.type),
    )
    .columns(*OUTBOUND_COLUMNS)
)


async def reserve_funds(
    conn: AsyncConnection,
    *,
    account_id: int,
    items: Sequence[tuple[int, int]],
    now: datetime,
    checked: bool = False,
) -> bool:
    """Reserve (message id, amount) pairs on the account, with their ledger entries: one conditional
    UPDATE of the account (unless the caller ``checked`` the funds under a lock) and one insert.
    False, and nothing written, when balance + credit - reserved does not cover them all. The
    messages' own ``reserved`` is set where they are claimed (mark_sending)."""
    total = sum(amount for _, amount in items)
    query = update(accounts).where(accounts.c.id == account_id)
    if not checked:
        query = query.where(accounts.c.balance + accounts.c.credit_limit - accounts.c.reserved >= total)
    result = await conn.execute(
        query.values(reserved=accounts.c.reserved + total).returning(accounts.c.balance)
    )
    balance = result.scalar_one_or_none()
    if balance is None:
        return False
    await bulk.insert_many(
        conn,
        ledger_entries,
        [
            {
                "account_id": account_id,
                "message_id": mid,
                "kind": "reserve",
                "amount": amount,
                "balance_after": int(balance),
                "note": None,
                "created_at": now,
            }
            for mid, amount in items
        ],
    )
    return True


async def available_funds(conn: AsyncConnection, account_id: int, *, lock: bool) -> int:
    """Balance + credit - reserved; with ``lock`` (PostgreSQL) the account row stays locked against
    other reservations and settlements until the commit (FOR NO KEY UPDATE: inserts of rows that
    refer to the account, which only need its key, are not held up)."""
    query = select(accounts.c.balance + accounts.c.credit_limit - accounts.c.reserved).where(
        accounts.c.id == account_id
    )
    if lock:
        query = query.with_for_update(key_share=True)
    return int((await conn.execute(query)).scalar_one())


async def reclaim_lapsed(conn: AsyncConnection, *, now: datetime, limit: int) -> int:
    """Claims whose worker died go back to `accepted`, due now, with their events."""
    lapsed = (
        select(messages.c.id)
        .where(SENDING, messages.c.lease_until <= now)
        .order_by(messages.c.lease_until)
        .limit(limit)
    )
    ids = [int(r.id) for r in await conn.execute(lapsed)]
    if not ids:
        return 0
    result = await conn.execute(
        update(messages)
        .where(
            bulk.in_values(conn, messages.c.id, ids),
            messages.c.status == "sending",
            messages.c.lease_until <= now,
        )
        .values(status="accepted", due_at=now, lease_until=None, holder_id=None)
        .returning(messages.c.id)
    )
    moved = sorted(int(r.id) for r in result)
    await _events(conn, moved, old="sending", new="accepted", at=now, detail="lease lapsed")
    return len(moved)


async def reclaim_of_holders(conn: AsyncConnection, *, holders: Sequence[int], now: datetime) -> int:
    """Messages claimed for sending by dead ``holders`` go back to `accepted`, due now, with their
    events. Reads the `sending` rows only (their partial index): no index on holder_id is needed."""
    if not holders:
        return 0
    result = await conn.execute(
        update(messages)
        .where(SENDING, bulk.in_values(conn, messages.c.holder_id, holders))
        .values(status="accepted", due_at=now, lease_until=None, holder_id=None)
        .returning(messages.c.id)
    )
    moved = sorted(int(r.id) for r in result)
    await _events(conn, moved, old="sending", new="accepted", at=now, detail="claim holder died")
    return len(moved)


async def _events(
    conn: AsyncConnection, ids: Sequence[int], *, old: str, new: str, at: datetime, detail: str | None
) -> None:
    await bulk.insert_many(
        conn,
        message_events,
        [{"message_id": mid, "from_status": old, "status": new, "at": at, "detail": detail} for mid in ids],
    )


async def move_many(
    conn: AsyncConnection, *, old: str, new: str, changes: Sequence[tuple[int, Mapping[str, Any]]]
) -> set[int]:
    """Compare-and-set each message ``old`` → ``new`` with its own column values (every mapping has
    the same keys); returns the ids moved. Messages no longer ``old`` are left as they are.

    The caller has checked the move against the state machine (several steps may be collapsed
    into one: lifecycle.Moves) and writes the events of the moved messages."""
    if not changes:
        return set()
    columns = tuple(changes[0][1])
    for name in columns:
        if name not in messages.c or name in ("id", "status"):
            raise ValueError(f"not a column a move may set: {name!r}")
    if conn.dialect.name == "postgresql":
        return await _move_many_pg(conn, old, new, columns, changes)
    return await _move_many_executemany(conn, old, new, columns, changes)


def _bound(
    dialect: Dialect, columns: Sequence[str], changes: Sequence[tuple[int, Mapping[str, Any]]]
) -> list[tuple[Any, ...]]:
    """Each change's values of ``columns``, converted as the column types would bind them (without
    SQLAlchemy's per-row parameter processing)."""
    processors = [messages.c[name].type.bind_processor(dialect) for name in columns]
    return [
        tuple(
            value if process is None else process(value)
            for process, value in zip(processors, (row[name] for name in columns), strict=True)
        )
        for _, row in changes
    ]


_PG_MOVES: dict[tuple[str, ...], TextClause] = {}


def _pg_move_sql(dialect: Dialect, columns: tuple[str, ...]) -> TextClause:
    sql = _PG_MOVES.get(columns)
    if sql is None:
        # One statement whatever the batch size (so the server prepares it once): the values
        # travel as one array per column and are joined back to their rows by unnest.
        arrays = ", ".join(
            ["CAST(:ids AS BIGINT[])"]
            + [f"CAST(:c_{name} AS {messages.c[name].type.compile(dialect=dialect)}[])" for name in columns]
        )
        assignments = ", ".join(["status = :new"] + [f"{name} = v.{name}" for name in columns])
        names = ", ".join(["id", *columns])
        # The clause itself is kept: text() parses its parameters anew on every construction.
        sql = _PG_MOVES[columns] = text(
            f"UPDATE messages AS m SET {assignments} FROM unnest({arrays}) AS v({names}) "  # noqa: S608
            "WHERE m.id = v.id AND m.status = :old RETURNING m.id"
        )
    return sql


async def _move_many_pg(
    conn: AsyncConnection,
    old: str,
    new: str,
    columns: tuple[str, ...],
    changes: Sequence[tuple[int, Mapping[str, Any]]],
) -> set[int]:
    params: dict[str, Any] = {"old": old, "new": new, "ids": [mid for mid, _ in changes]}
    rows = _bound(conn.dialect, columns, changes)
    for i, name in enumerate(columns):
        params[f"c_{name}"] = [row[i] for row in rows]
    result = await conn.execute(_pg_move_sql(conn.dialect, columns), params)
    return {int(r[0]) for r in result}


_CAS_SQL: dict[tuple[str, ...], str] = {}


def _cas_sql(columns: tuple[str, ...]) -> str:
    sql = _CAS_SQL.get(columns)
    if sql is None:
        assignments = ", ".join(["status = ?"] + [f"{name} = ?" for name in columns])
        sql = _CAS_SQL[columns] = f"UPDATE messages SET {assignments} WHERE id = ? AND status = ?"  # noqa: S608
    return sql


async def _move_many_executemany(
    conn: AsyncConnection,
    old: str,
    new: str,
    columns: tuple[str, ...],
    changes: Sequence[tuple[int, Mapping[str, Any]]],
) -> set[int]:
    """SQLite: one executemany of the driver (values converted here as the column types would,
    without SQLAlchemy's per-row processing). Its row count says whether every message moved; if
    not (only possible when another writer got between the caller's read and this), it is undone
    and the messages are moved one by one to learn which."""
    params = [
        (new, *values, mid, old)
        for (mid, _), values in zip(changes, _bound(conn.dialect, columns, changes), strict=True)
    ]
    sql = _cas_sql(columns)
    savepoint = await conn.begin_nested()
    result = await conn.exec_driver_sql(sql, params)
    if result.rowcount == len(params):
        await savepoint.commit()
        return {mid for mid, _ in changes}
    await savepoint.rollback()
    moved: set[int] = set()
    for (mid, _), one in zip(changes, params, strict=True):
        if (await conn.exec_driver_sql(sql, one)).rowcount == 1:
            moved.add(mid)
    return moved
