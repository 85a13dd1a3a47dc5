"""Many rows in one driver call, ids handed out before the insert, and lists of values as parameters.

SQLAlchemy's per-row parameter processing costs more than the insert itself for large batches, so
values are converted here the way the column types would (datetimes to naive UTC — on SQLite the
text form SQLAlchemy stores — and booleans to integers on SQLite), and the rows go to the driver's
executemany as one prepared statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Table, any_, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection


def in_values(
    conn: AsyncConnection, column: ColumnElement[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``= ANY`` of one array parameter, so the statement's text,
    and with it the prepared statement asyncpg caches, is the same whatever the batch's size."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


# Rows from which insert_many passes a column that does not vary once instead of as an array.
_FOLD_FROM_ROWS = 64


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _naive_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def _pg_value(value: Any) -> Any:
    return _naive_utc(value) if isinstance(value, datetime) else value


def _converter(sqlite: bool) -> Callable[[Any], Any]:
    convert = _sqlite_value if sqlite else _pg_value
    # Rows of a batch share a handful of timestamps: convert each distinct one once.
    seen: dict[datetime, Any] = {}

    def value(v: Any) -> Any:
        if not isinstance(v, datetime):
            return int(v) if sqlite and isinstance(v, bool) else v
        if v not in seen:
            seen[v] = convert(v)
        return seen[v]

    return value


async def insert_many(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    same: Mapping[str, Any] | None = None,
    on_conflict: str = "",
) -> None:
    """INSERT every row (all with the same keys, plus the ``same`` values shared by all of them) with
    one driver call; ``on_conflict`` is our own ``ON CONFLICT …`` clause (the same text on both
    engines), never request data."""
    if not rows:
        return
    shared = dict(same or {})
    varying = list(rows[0])
    columns = varying + list(shared)
    # Column names are our own dict keys, never request data; checked against the table all the same.
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"not columns of {table.name}: {sorted(unknown)}")
    sqlite = conn.dialect.name == "sqlite"
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    value = _converter(sqlite)
    constants = tuple(value(v) for v in shared.values())
    if sqlite:
        placeholders = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({placeholders}) {on_conflict}"  # noqa: S608
        await conn.exec_driver_sql(sql, [tuple(value(row[c]) for c in varying) + constants for row in rows])
        return

    # PostgreSQL: one statement whatever the row count (executemany would still be a statement per
    # row on the server): each varying column as one array, each shared value once. A column whose
    # value is the same in every row is passed once too: asyncpg checks and encodes every element of
    # an array parameter (~0.5 µs each), and most columns of a campaign's 5000 rows do not vary.
    # Only for large batches: in small ones columns are equal by chance, and each such pattern would
    # be one more statement text for asyncpg to prepare.
    if len(rows) >= _FOLD_FROM_ROWS:
        constant = [c for c in varying if _constant(rows, c)]
        for c in constant[: len(varying) - 1]:  # one array stays: it gives the row count
            varying.remove(c)
            shared[c] = rows[0][c]
        columns = varying + list(shared)
        names = ", ".join(quote(c) for c in columns)
        constants = tuple(value(v) for v in shared.values())

    key = (table.name, tuple(varying), tuple(shared), on_conflict)
    statement = _PG_INSERTS.get(key)
    if statement is None:

        def pg_type(c: str) -> str:
            return str(table.c[c].type.compile(dialect=conn.dialect))

        arrays = ", ".join(f"${i}::{pg_type(c)}[]" for i, c in enumerate(varying, start=1))
        scalars = [f"${i}::{pg_type(c)}" for i, c in enumerate(shared, start=len(varying) + 1)]
        picks = ", ".join([f"u.{quote(c)}" for c in varying] + scalars)
        statement = _PG_INSERTS[key] = (
            f"INSERT INTO {quote(table.name)} ({names}) SELECT {picks} "  # noqa: S608
            f"FROM unnest({arrays}) AS u({', '.join(quote(c) for c in varying)}) {on_conflict}"
        )
    await conn.exec_driver_sql(statement, (*([value(row[c]) for row in rows] for c in varying), *constants))


# The statement of each (table, varying columns, shared columns, conflict clause): compiling the
# column types anew cost ~4 µs a column on every call.
_PG_INSERTS: dict[tuple[str, tuple[str, ...], tuple[str, ...], str], str] = {}


def _constant(rows: Sequence[dict[str, Any]], column: str) -> bool:
    first = rows[0][column]
    kind = type(first)
    # Same type as well as equal: 1 == True == 1.0, but they are not the same parameter.
    return all(type(v) is kind and v == first for v in (row[column] for row in rows))


async def next_ids(conn: AsyncConnection, table: Table, count: int) -> list[int]:
    """``count`` new ids for ``table``, ascending, so rows can be inserted (and referenced by their
    events and ledger entries) in one executemany each.

    PostgreSQL draws them from the column's sequence. SQLite continues after the largest id, as its
    own rowid allocation would: safe because a write transaction there holds the database's only
    write lock from BEGIN IMMEDIATE to the commit.
    """
    if count <= 0:
        return []
    if conn.dialect.name == "sqlite":
        top = (await conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table.name}"))).scalar_one()  # noqa: S608
        return list(range(int(top) + 1, int(top) + 1 + count))
    query = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
    return sorted(int(v) for v in (await conn.execute(query, {"table": table.name, "n": count})).scalars())
