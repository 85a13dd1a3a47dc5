"""What an account's money looks like: its ledger, page by page, and the prices it is billed at.

Prices come from the account's tariffs as ``GET /api/accounts/tariff`` lists them (its own, or the
system default when it has none), each with its prices per country, channel and kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from rcsgate.domain.records import LedgerEntry, Price, Tariff
from rcsgate.store import tariffs as tariff_store
from rcsgate.store.db import Database
from rcsgate.store.tables import ledger_entries

KINDS = ("text", "single_card", "carousel", "sms")
MAX_TARIFFS = 50


@dataclass(frozen=True, slots=True)
class CountryPrices:
    country: str
    by_kind: dict[str, int]  # kind -> units; an SMS price is per part


@dataclass(frozen=True, slots=True)
class TariffPrices:
    tariff: Tariff
    countries: list[CountryPrices]


async def ledger(
    db: Database, *, account_id: int, before_id: int | None = None, limit: int = 25
) -> tuple[list[LedgerEntry], int | None]:
    """A page of the account's ledger, newest first, and the ``before_id`` of the next page."""
    t = ledger_entries.c
    query = select(ledger_entries).where(t.account_id == account_id)
    if before_id is not None:
        query = query.where(t.id < before_id)
    async with db.read() as conn:
        rows = list(await conn.execute(query.order_by(t.id.desc()).limit(limit + 1)))
    entries = [
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
        for r in rows[:limit]
    ]
    return entries, (entries[-1].id if len(rows) > limit else None)


def _by_country(prices: list[Price]) -> list[CountryPrices]:
    table: dict[str, dict[str, int]] = {}
    for p in prices:
        table.setdefault(p.country, {})[p.kind] = p.price_units
    return [CountryPrices(country, kinds) for country, kinds in sorted(table.items())]


async def prices(db: Database, *, account_id: int) -> list[TariffPrices]:
    """The account's tariffs (the one it is billed by when it names none first) with their prices."""
    async with db.read() as conn:
        tariffs, _ = await tariff_store.account_tariffs_page(conn, account_id, offset=0, limit=MAX_TARIFFS)
        out = [TariffPrices(t, _by_country(await tariff_store.list_prices(conn, t.id))) for t in tariffs]
    return sorted(out, key=lambda tp: (not tp.tariff.is_default, tp.tariff.code))
