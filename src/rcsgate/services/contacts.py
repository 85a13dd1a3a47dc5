"""Phones an account knows (its contact book) and which of them are verified; the contact book's HTTP use
cases are in ``services.contact_book``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound
from rcsgate.domain.phones import normalize_phone
from rcsgate.store import accounts as account_store
from rcsgate.store import bulk
from rcsgate.store.db import Database
from rcsgate.store.tables import contacts


async def add_missing(conn: AsyncConnection, *, account_id: int, phones: list[str], now: datetime) -> None:
    """Add phones not yet in the contact book; existing contacts stay as they are."""
    if not phones:
        return
    await bulk.insert_many(
        conn,
        contacts,
        [{"phone": p} for p in phones],
        same={"account_id": account_id, "verified": False, "created_at": now},
        on_conflict="ON CONFLICT (account_id, phone) DO NOTHING",
    )


async def is_verified(conn: AsyncConnection, *, account_id: int, phone: str) -> bool:
    query = select(contacts.c.verified).where(contacts.c.account_id == account_id, contacts.c.phone == phone)
    return bool((await conn.execute(query)).scalar_one_or_none())


async def verify(db: Database, clock: Clock, *, account_id: int, phone: str) -> None:
    """Mark a phone as a verified contact of the account (test mode may message only these)."""
    number = normalize_phone(phone)
    if number is None:
        raise InvalidInput.field("phone", "The phone must be 9 to 15 digits, country code first.")
    phone = number
    async with db.write() as conn:
        if await account_store.get_account(conn, account_id) is None:
            raise NotFound(f"Account {account_id} was not found.")
        await add_missing(conn, account_id=account_id, phones=[phone], now=clock.now())
        await conn.execute(
            update(contacts)
            .where(contacts.c.account_id == account_id, contacts.c.phone == phone)
            .values(verified=True)
        )
