"""What accepting a batch of single sends reads and writes: one query per kind of fact for the whole
batch (keys, accounts, agents, tariffs, prices, stop list, repeats), and one write per table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.records import Account, Principal, RcsAgent
from rcsgate.store.accounts import _account
from rcsgate.store.bulk import in_values
from rcsgate.store.senders import _agent
from rcsgate.store.tables import (
    account_tariffs,
    accounts,
    api_keys,
    contacts,
    idempotency_keys,
    messages,
    prices,
    rcs_agents,
    request_fingerprints,
    stop_list,
    tariffs,
)

Pair = tuple[int, str]  # (account id, value)


def _among(
    conn: AsyncConnection, account_column: Any, value_column: Any, pairs: set[Pair]
) -> list[ColumnElement[bool]]:
    """A superset of the rows matching the (account, value) pairs (lookups then use the exact pair):
    two IN lists, because SQLite scans the whole table for a row-value IN (3.40) instead of using
    the index."""
    return [
        in_values(conn, account_column, {a for a, _ in pairs}),
        in_values(conn, value_column, {v for _, v in pairs}),
    ]


@dataclass(frozen=True, slots=True)
class Tariffs:
    """Active tariffs by code, the system default, and each account's own tariffs."""

    by_code: dict[int, tuple[int, bool]]  # code -> (tariff id, is default)
    default_id: int | None
    own: dict[int, list[tuple[int, bool]]]  # account id -> [(tariff id, is the account's default)]


async def live_keys(conn: AsyncConnection, claims: Iterable[tuple[int, int]]) -> dict[int, Principal]:
    """Principals of the unrevoked keys among (account id, key id) claims, by key id."""
    wanted = {key_id: account_id for account_id, key_id in claims}
    if not wanted:
        return {}
    query = select(api_keys.c.id, api_keys.c.account_id, api_keys.c.mode).where(
        in_values(conn, api_keys.c.id, wanted), api_keys.c.revoked_at.is_(None)
    )
    return {
        int(r.id): Principal(account_id=r.account_id, key_id=r.id, mode=r.mode)
        for r in await conn.execute(query)
        if wanted.get(int(r.id)) == r.account_id
    }


async def accounts_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, Account]:
    rows = await conn.execute(select(accounts).where(in_values(conn, accounts.c.id, set(ids))))
    return {int(r.id): _account(r) for r in rows}


async def agents_by_name(conn: AsyncConnection, pairs: set[Pair]) -> dict[Pair, RcsAgent]:
    if not pairs:
        return {}
    query = select(rcs_agents).where(*_among(conn, rcs_agents.c.account_id, rcs_agents.c.name, pairs))
    return {(int(r.account_id), str(r.name)): _agent(r) for r in await conn.execute(query)}


async def fingerprints(conn: AsyncConnection, pairs: set[Pair]) -> dict[Pair, datetime]:
    """When each (account, body hash) was last accepted, where it was."""
    if not pairs:
        return {}
    t = request_fingerprints
    query = select(t.c.account_id, t.c.body_hash, t.c.created_at).where(
        *_among(conn, t.c.account_id, t.c.body_hash, pairs)
    )
    return {(int(r.account_id), str(r.body_hash)): r.created_at for r in await conn.execute(query)}


async def idempotent_answers(conn: AsyncConnection, pairs: set[Pair]) -> dict[Pair, tuple[str, str]]:
    """(body hash, stored answer) of each (account, Idempotency-Key) already used."""
    if not pairs:
        return {}
    t = idempotency_keys
    query = select(t.c.account_id, t.c.key, t.c.body_hash, t.c.response).where(
        *_among(conn, t.c.account_id, t.c.key, pairs)
    )
    return {
        (int(r.account_id), str(r.key)): (str(r.body_hash), str(r.response))
        for r in await conn.execute(query)
    }


async def verified_phones(conn: AsyncConnection, pairs: set[Pair]) -> set[Pair]:
    if not pairs:
        return set()
    query = select(contacts.c.account_id, contacts.c.phone).where(
        *_among(conn, contacts.c.account_id, contacts.c.phone, pairs), contacts.c.verified.is_(True)
    )
    return {(int(r.account_id), str(r.phone)) for r in await conn.execute(query)}


async def taken_references(conn: AsyncConnection, pairs: set[Pair]) -> set[Pair]:
    if not pairs:
        return set()
    query = select(messages.c.account_id, messages.c.reference_id).where(
        *_among(conn, messages.c.account_id, messages.c.reference_id, pairs)
    )
    return {(int(r.account_id), str(r.reference_id)) for r in await conn.execute(query)}


async def stop_listed(conn: AsyncConnection, pairs: set[Pair], *, list_type: str) -> set[Pair]:
    if not pairs:
        return set()
    query = select(stop_list.c.account_id, stop_list.c.phone).where(
        stop_list.c.type == list_type, *_among(conn, stop_list.c.account_id, stop_list.c.phone, pairs)
    )
    return {(int(r.account_id), str(r.phone)) for r in await conn.execute(query)}


async def tariff_table(conn: AsyncConnection, account_ids: set[int]) -> Tariffs:
    active = list(
        await conn.execute(
            select(tariffs.c.id, tariffs.c.code, tariffs.c.is_default).where(tariffs.c.is_active.is_(True))
        )
    )
    own: dict[int, list[tuple[int, bool]]] = {}
    links = await conn.execute(
        select(account_tariffs).where(in_values(conn, account_tariffs.c.account_id, account_ids))
    )
    for link in links:
        own.setdefault(int(link.account_id), []).append((int(link.tariff_id), bool(link.is_default)))
    defaults = [int(r.id) for r in active if r.is_default]
    return Tariffs(
        by_code={int(r.code): (int(r.id), bool(r.is_default)) for r in active},
        default_id=defaults[0] if defaults else None,
        own=own,
    )


async def price_table(
    conn: AsyncConnection, tariff_ids: set[int], countries: set[str]
) -> dict[tuple[int, str, str, str], int]:
    """Prices by (tariff id, channel, kind, country)."""
    if not tariff_ids or not countries:
        return {}
    query = select(
        prices.c.tariff_id, prices.c.channel, prices.c.kind, prices.c.country, prices.c.price
    ).where(in_values(conn, prices.c.tariff_id, tariff_ids), in_values(conn, prices.c.country, countries))
    return {(int(r.tariff_id), r.channel, r.kind, r.country): int(r.price) for r in await conn.execute(query)}


async def reserve_total(conn: AsyncConnection, *, account_id: int, amount: int) -> int | None:
    """Reserve ``amount`` if balance + credit - reserved covers it: the balance, or None (nothing done)."""
    result = await conn.execute(
        update(accounts)
        .where(
            accounts.c.id == account_id,
            accounts.c.balance + accounts.c.credit_limit - accounts.c.reserved >= amount,
        )
        .values(reserved=accounts.c.reserved + amount)
        .returning(accounts.c.balance)
    )
    balance = result.scalar_one_or_none()
    return None if balance is None else int(balance)


async def locked_funds(conn: AsyncConnection, account_id: int) -> tuple[int, int]:
    """(balance, what may still be reserved) with the account row locked to the end of the transaction."""
    query = (
        select(accounts.c.balance, accounts.c.credit_limit, accounts.c.reserved)
        .where(accounts.c.id == account_id)
        .with_for_update()
    )
    row = (await conn.execute(query)).one()
    return int(row.balance), int(row.balance + row.credit_limit - row.reserved)
