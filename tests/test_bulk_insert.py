"""store.bulk.insert_many on both engines: what is stored is what was given, whichever columns of a large
batch it passes once (the same value in every row) and whichever as arrays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from conftest import run
from rcsgate.domain.phones import country_of
from rcsgate.store import bulk
from rcsgate.store.db import Database
from rcsgate.store.tables import accounts, contacts

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _account_ids(db_url: str, count: int) -> list[int]:
    async def create(db: Database) -> list[int]:
        async with db.write() as conn:
            ids = []
            for n in range(count):
                result = await conn.execute(
                    accounts.insert().values(
                        name=f"bulk{n}", currency="EUR", timezone="UTC", created_at=NOW, webhook_secret="s"
                    )
                )
                ids.append(int(result.inserted_primary_key[0]))
            return ids

    return run(create, db_url)


def _stored(db_url: str) -> list[dict[str, Any]]:
    async def read(db: Database) -> list[dict[str, Any]]:
        async with db.read() as conn:
            rows = await conn.execute(select(contacts).order_by(contacts.c.phone))
            return [dict(r._mapping) for r in rows]

    return run(read, db_url)


def test_a_large_batch_keeps_every_value_whether_a_column_varies_or_not(db_url: str) -> None:
    first, second = _account_ids(db_url, 2)
    later = NOW + timedelta(hours=1)
    rows: list[dict[str, Any]] = [
        # phone varies everywhere; account_id and created_at only in the last row; verified never.
        {"phone": f"380500000{n:03d}", "account_id": first, "verified": True, "created_at": NOW}
        for n in range(99)
    ]
    rows.append({"phone": "380500000999", "account_id": second, "verified": True, "created_at": later})

    async def insert(db: Database) -> None:
        async with db.write() as conn:
            await bulk.insert_many(conn, contacts, rows, same={"fields": None})

    run(insert, db_url)
    stored = _stored(db_url)
    assert [r["phone"] for r in stored] == [r["phone"] for r in rows]
    assert [r["account_id"] for r in stored] == [first] * 99 + [second]
    assert all(r["verified"] is True for r in stored)
    assert [r["created_at"].replace(tzinfo=UTC) for r in stored] == [NOW] * 99 + [later]
    assert all(r["fields"] is None for r in stored)


def test_a_large_batch_where_no_column_varies_stores_every_row(db_url: str) -> None:
    (account,) = _account_ids(db_url, 1)
    rows = [{"account_id": account, "phone": "380500000001"}] * 70

    async def insert(db: Database) -> None:
        async with db.write() as conn:
            await bulk.insert_many(
                conn,
                contacts,
                rows,
                same={"verified": False, "created_at": NOW},
                on_conflict="ON CONFLICT (account_id, phone) DO NOTHING",
            )

    run(insert, db_url)
    assert [(r["account_id"], r["phone"]) for r in _stored(db_url)] == [(account, "380500000001")]


def test_country_of_answers_by_prefix_as_by_full_parse() -> None:
    # Single-region codes from the prefix (cached per three digits), shared codes by libphonenumber.
    assert country_of("380501234567") == "UA"
    assert country_of("380671234567") == "UA"
    assert country_of("4930123456") == "DE"
    assert country_of("12025550123") == "US"
    assert country_of("79161234567") == "RU"
    assert country_of("882345678901") is None  # international networks: no country
    assert country_of("38") is None
