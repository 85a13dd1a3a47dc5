"""Tariffs and their prices (operator side) and an account's view of them."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound
from rcsgate.domain.iso_codes import normalize_country
from rcsgate.domain.money import MoneyError, to_units
from rcsgate.domain.records import Price, Tariff
from rcsgate.store import accounts as account_store
from rcsgate.store import tariffs as store
from rcsgate.store.db import Database

# Which (channel, kind) pairs a price may be set for.
PRICE_KINDS = {("rcs", "text"), ("rcs", "single_card"), ("rcs", "carousel"), ("sms", "sms")}


async def create_tariff(
    db: Database, clock: Clock, *, code: int, name: str, is_default: bool = False, is_active: bool = True
) -> Tariff:
    if code < 0:
        raise InvalidInput.field("code", "The tariff code must be zero or positive.")
    try:
        async with db.write() as conn:
            if is_default:
                await store.clear_system_default(conn)
            await store.insert_tariff(
                conn, code=code, name=name, is_default=is_default, is_active=is_active, created_at=clock.now()
            )
            tariff = await store.get_tariff_by_code(conn, code)
    except IntegrityError as exc:
        raise InvalidInput.field("code", f"A tariff with code {code} already exists.") from exc
    assert tariff is not None
    return tariff


async def list_tariffs(db: Database) -> list[Tariff]:
    async with db.read() as conn:
        return await store.list_tariffs(conn)


async def get_tariff(db: Database, *, code: int) -> tuple[Tariff, list[Price]]:
    async with db.read() as conn:
        tariff = await store.get_tariff_by_code(conn, code)
        if tariff is None:
            raise NotFound(f"Tariff {code} was not found.")
        return tariff, await store.list_prices(conn, tariff.id)


async def set_price(
    db: Database, *, code: int, channel: str, kind: str, country: str, price: Decimal | str
) -> Price:
    if (channel, kind) not in PRICE_KINDS:
        allowed = ", ".join(f"{c}/{k}" for c, k in sorted(PRICE_KINDS))
        raise InvalidInput.field("kind", f"channel/kind must be one of {allowed}")
    try:
        country = normalize_country(country)
    except ValueError as exc:
        raise InvalidInput.field("country", str(exc)) from exc
    try:
        units = to_units(price)
    except (ValueError, MoneyError) as exc:
        raise InvalidInput.field("price", str(exc)) from exc
    if units < 0:
        raise InvalidInput.field("price", "A price cannot be negative.")
    async with db.write() as conn:
        tariff = await store.get_tariff_by_code(conn, code)
        if tariff is None:
            raise NotFound(f"Tariff {code} was not found.")
        await store.upsert_price(
            conn, tariff_id=tariff.id, channel=channel, kind=kind, country=country, price=units
        )
    return Price(tariff_code=code, channel=channel, kind=kind, country=country, price_units=units)


async def assign_tariff(db: Database, *, account_id: int, code: int, is_default: bool = False) -> None:
    async with db.write() as conn:
        if await account_store.get_account(conn, account_id) is None:
            raise NotFound(f"Account {account_id} was not found.")
        tariff = await store.get_tariff_by_code(conn, code)
        if tariff is None:
            raise NotFound(f"Tariff {code} was not found.")
        await store.link_account_tariff(
            conn, account_id=account_id, tariff_id=tariff.id, is_default=is_default
        )


async def account_tariffs(
    db: Database, *, account_id: int, offset: int, limit: int
) -> tuple[list[Tariff], int]:
    async with db.read() as conn:
        return await store.account_tariffs_page(conn, account_id, offset=offset, limit=limit)
