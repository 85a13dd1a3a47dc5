"""Queries on tariffs and their prices."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.records import Price, Tariff
from rcsgate.store.tables import account_tariffs, prices, tariffs


def _tariff(row: Any, is_default: bool | None = None) -> Tariff:
    return Tariff(
        id=row.id,
        code=row.code,
        name=row.name,
        is_active=bool(row.is_active),
        is_default=bool(row.is_default if is_default is None else is_default),
    )


async def insert_tariff(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(insert(tariffs).values(**values).returning(tariffs.c.id))
    return int(result.scalar_one())


async def clear_system_default(conn: AsyncConnection) -> None:
    await conn.execute(update(tariffs).where(tariffs.c.is_default.is_(True)).values(is_default=False))


async def get_tariff_by_code(conn: AsyncConnection, code: int) -> Tariff | None:
    row = (await conn.execute(select(tariffs).where(tariffs.c.code == code))).first()
    return _tariff(row) if row else None


async def list_tariffs(conn: AsyncConnection) -> list[Tariff]:
    return [_tariff(r) for r in await conn.execute(select(tariffs).order_by(tariffs.c.code))]


async def upsert_price(
    conn: AsyncConnection, *, tariff_id: int, channel: str, kind: str, country: str, price: int
) -> None:
    key = and_(
        prices.c.tariff_id == tariff_id,
        prices.c.channel == channel,
        prices.c.kind == kind,
        prices.c.country == country,
    )
    result = await conn.execute(update(prices).where(key).values(price=price))
    if result.rowcount == 0:
        await conn.execute(
            insert(prices).values(
                tariff_id=tariff_id, channel=channel, kind=kind, country=country, price=price
            )
        )


async def list_prices(conn: AsyncConnection, tariff_id: int) -> list[Price]:
    rows = await conn.execute(
        select(prices, tariffs.c.code)
        .join(tariffs, tariffs.c.id == prices.c.tariff_id)
        .where(prices.c.tariff_id == tariff_id)
        .order_by(prices.c.country, prices.c.channel, prices.c.kind)
    )
    return [
        Price(tariff_code=r.code, channel=r.channel, kind=r.kind, country=r.country, price_units=r.price)
        for r in rows
    ]


async def country_prices(conn: AsyncConnection, tariff_id: int, channel: str, kind: str) -> dict[str, int]:
    """The tariff's prices of one channel and kind, by country."""
    query = select(prices.c.country, prices.c.price).where(
        prices.c.tariff_id == tariff_id, prices.c.channel == channel, prices.c.kind == kind
    )
    return {str(r.country): int(r.price) for r in await conn.execute(query)}


async def link_account_tariff(
    conn: AsyncConnection, *, account_id: int, tariff_id: int, is_default: bool
) -> None:
    if is_default:
        await conn.execute(
            update(account_tariffs).where(account_tariffs.c.account_id == account_id).values(is_default=False)
        )
    exists = (
        await conn.execute(
            select(literal(1)).where(
                account_tariffs.c.account_id == account_id, account_tariffs.c.tariff_id == tariff_id
            )
        )
    ).first()
    if exists:
        await conn.execute(
            update(account_tariffs)
            .where(account_tariffs.c.account_id == account_id, account_tariffs.c.tariff_id == tariff_id)
            .values(is_default=is_default)
        )
    else:
        await conn.execute(
            insert(account_tariffs).values(account_id=account_id, tariff_id=tariff_id, is_default=is_default)
        )


def _account_tariffs_query(account_id: int) -> Any:
    """The account's own tariffs, or the system default when it has none.

    ``is_default`` in the answer means "what this account is billed by when it names no tariff".
    """
    own = select(account_tariffs.c.tariff_id).where(account_tariffs.c.account_id == account_id)
    has_own = select(literal(1)).where(account_tariffs.c.account_id == account_id).exists()
    has_own_default = (
        select(literal(1))
        .where(account_tariffs.c.account_id == account_id, account_tariffs.c.is_default.is_(True))
        .exists()
    )
    link = account_tariffs.alias("link")
    is_default = func.coalesce(
        select(link.c.is_default)
        .where(link.c.account_id == account_id, link.c.tariff_id == tariffs.c.id)
        .scalar_subquery(),
        False,
    )
    return select(
        tariffs.c.id,
        tariffs.c.code,
        tariffs.c.name,
        tariffs.c.is_active,
        # Without an own default, the system default stays the account's default.
        or_(is_default.is_(True), and_(~has_own_default, tariffs.c.is_default.is_(True))).label("is_default"),
    ).where(or_(tariffs.c.id.in_(own), and_(~has_own, tariffs.c.is_default.is_(True))))


async def account_tariffs_page(
    conn: AsyncConnection, account_id: int, *, offset: int, limit: int
) -> tuple[list[Tariff], int]:
    base = _account_tariffs_query(account_id).subquery()
    total = int((await conn.execute(select(func.count()).select_from(base))).scalar_one())
    rows = await conn.execute(select(base).order_by(base.c.code).offset(offset).limit(limit))
    return [_tariff(r) for r in rows], total
