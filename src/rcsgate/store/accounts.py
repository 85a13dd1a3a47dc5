"""Queries on accounts, API keys and the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.records import Account, ApiKeyInfo, LedgerEntry, Principal
from rcsgate.store.tables import accounts, api_keys, ledger_entries


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        name=row.name,
        currency=row.currency,
        balance_units=row.balance,
        credit_limit_units=row.credit_limit,
        reserved_units=row.reserved,
        mode=row.mode,
        rcs_callback_url=row.rcs_callback_url,
        timezone=row.timezone,
        created_at=row.created_at,
    )


def _key(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        account_id=row.account_id,
        prefix=row.prefix,
        mode=row.mode,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def insert_account(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(insert(accounts).values(**values).returning(accounts.c.id))
    return int(result.scalar_one())


async def get_account(conn: AsyncConnection, account_id: int, *, for_update: bool = False) -> Account | None:
    query = select(accounts).where(accounts.c.id == account_id)
    if for_update:
        # FOR NO KEY UPDATE: as exclusive as FOR UPDATE against the other writers of the row, but it
        # leaves the foreign-key checks of rows that reference the account (each message and webhook
        # row takes KEY SHARE) free; with FOR UPDATE every worker inserting for the account waited
        # out a 5000-recipient campaign's accept.
        query = query.with_for_update(key_share=True)
    row = (await conn.execute(query)).first()
    return _account(row) if row else None


async def find_accounts_by_name(conn: AsyncConnection, name: str) -> list[Account]:
    rows = await conn.execute(select(accounts).where(accounts.c.name == name).order_by(accounts.c.id))
    return [_account(r) for r in rows]


async def list_accounts(conn: AsyncConnection) -> list[Account]:
    rows = await conn.execute(select(accounts).order_by(accounts.c.id))
    return [_account(r) for r in rows]


async def update_account(conn: AsyncConnection, account_id: int, **values: Any) -> bool:
    result = await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
    return result.rowcount == 1


async def get_webhook_secret(conn: AsyncConnection, account_id: int) -> str | None:
    query = select(accounts.c.webhook_secret).where(accounts.c.id == account_id)
    value = (await conn.execute(query)).scalar_one_or_none()
    return str(value) if value is not None else None


async def add_to_balance(
    conn: AsyncConnection,
    *,
    account_id: int,
    amount_units: int,
    kind: str,
    note: str | None,
    now: datetime,
) -> int:
    """Move the balance and write its ledger entry in the caller's transaction; returns the new balance."""
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(balance=accounts.c.balance + amount_units)
        .returning(accounts.c.balance)
    )
    balance_after = int(result.scalar_one())
    await conn.execute(
        insert(ledger_entries).values(
            account_id=account_id,
            message_id=None,
            kind=kind,
            amount=amount_units,
            balance_after=balance_after,
            note=note,
            created_at=now,
        )
    )
    return balance_after


async def list_ledger(conn: AsyncConnection, account_id: int, *, limit: int = 100) -> list[LedgerEntry]:
    rows = await conn.execute(
        select(ledger_entries)
        .where(ledger_entries.c.account_id == account_id)
        .order_by(ledger_entries.c.id.desc())
        .limit(limit)
    )
    return [
        LedgerEntry(
            id=r.id,
            account_id=r.account_id,
            message_id=r.message_id,
            kind=r.kind,
            amount_units=r.amount,
            balance_after_units=r.balance_after,
            note=r.note,
            created_at=r.created_at,
        )
        for r in rows
    ]


async def insert_api_key(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(insert(api_keys).values(**values).returning(api_keys.c.id))
    return int(result.scalar_one())


async def list_api_keys(conn: AsyncConnection, account_id: int) -> list[ApiKeyInfo]:
    rows = await conn.execute(
        select(api_keys).where(api_keys.c.account_id == account_id).order_by(api_keys.c.id)
    )
    return [_key(r) for r in rows]


async def get_api_key(conn: AsyncConnection, key_id: int) -> ApiKeyInfo | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    return _key(row) if row else None


async def revoke_api_key(conn: AsyncConnection, key_id: int, now: datetime) -> bool:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


async def principal_by_hash(conn: AsyncConnection, key_hash: str) -> Principal | None:
    row = (
        await conn.execute(
            select(api_keys.c.id, api_keys.c.account_id, api_keys.c.mode).where(
                api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
            )
        )
    ).first()
    return Principal(account_id=row.account_id, key_id=row.id, mode=row.mode) if row else None


async def principal_by_key_id(conn: AsyncConnection, key_id: int, account_id: int) -> Principal | None:
    row = (
        await conn.execute(
            select(api_keys.c.id, api_keys.c.account_id, api_keys.c.mode).where(
                api_keys.c.id == key_id,
                api_keys.c.account_id == account_id,
                api_keys.c.revoked_at.is_(None),
            )
        )
    ).first()
    return Principal(account_id=row.account_id, key_id=row.id, mode=row.mode) if row else None


async def count_accounts(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(accounts))).scalar_one())
