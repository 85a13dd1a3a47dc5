"""Queries on RCS agents and SMS senders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.records import RcsAgent, SmsSender
from rcsgate.store.tables import rcs_agents, sms_senders


def _agent(row: Any) -> RcsAgent:
    return RcsAgent(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        country=row.country,
        status=row.status,
        is_test=bool(row.is_test),
        created_at=row.created_at,
        send_rate=row.send_rate,
        connector_id=row.connector_id,
    )


def _sender(row: Any) -> SmsSender:
    return SmsSender(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        country=row.country,
        status=row.status,
        is_default=bool(row.is_default),
        created_at=row.created_at,
        connector_id=row.connector_id,
    )


async def insert_agent(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(insert(rcs_agents).values(**values).returning(rcs_agents.c.id))
    return int(result.scalar_one())


async def get_agent_by_name(conn: AsyncConnection, account_id: int, name: str) -> RcsAgent | None:
    query = select(rcs_agents).where(rcs_agents.c.account_id == account_id, rcs_agents.c.name == name)
    row = (await conn.execute(query)).first()
    return _agent(row) if row else None


async def get_agent(conn: AsyncConnection, agent_id: int) -> RcsAgent | None:
    row = (await conn.execute(select(rcs_agents).where(rcs_agents.c.id == agent_id))).first()
    return _agent(row) if row else None


async def list_agents(conn: AsyncConnection, account_id: int | None = None) -> list[RcsAgent]:
    query = select(rcs_agents).order_by(rcs_agents.c.id)
    if account_id is not None:
        query = query.where(rcs_agents.c.account_id == account_id)
    return [_agent(r) for r in await conn.execute(query)]


async def set_agent_status(conn: AsyncConnection, agent_id: int, status: str) -> bool:
    result = await conn.execute(update(rcs_agents).where(rcs_agents.c.id == agent_id).values(status=status))
    return result.rowcount == 1


async def insert_sender(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(insert(sms_senders).values(**values).returning(sms_senders.c.id))
    return int(result.scalar_one())


async def get_sender(conn: AsyncConnection, sender_id: int) -> SmsSender | None:
    row = (await conn.execute(select(sms_senders).where(sms_senders.c.id == sender_id))).first()
    return _sender(row) if row else None


async def get_sender_by_name(conn: AsyncConnection, account_id: int, name: str) -> SmsSender | None:
    query = select(sms_senders).where(sms_senders.c.account_id == account_id, sms_senders.c.name == name)
    row = (await conn.execute(query)).first()
    return _sender(row) if row else None


async def list_senders(conn: AsyncConnection, account_id: int | None = None) -> list[SmsSender]:
    query = select(sms_senders).order_by(sms_senders.c.id)
    if account_id is not None:
        query = query.where(sms_senders.c.account_id == account_id)
    return [_sender(r) for r in await conn.execute(query)]


async def take_send_tokens(
    conn: AsyncConnection, *, demand: dict[int, int], now: datetime, lock: bool
) -> dict[int, int]:
    """For agents with a send rate, how many of ``demand`` messages may go now (a token bucket holding one
    second's worth, refilled at the rate). Agents without a rate are absent from the answer: unlimited."""
    if not demand:
        return {}
    query = select(
        rcs_agents.c.id, rcs_agents.c.send_rate, rcs_agents.c.rate_tokens, rcs_agents.c.rate_updated_at
    ).where(rcs_agents.c.id.in_(list(demand)), rcs_agents.c.send_rate.is_not(None))
    if lock:
        query = query.with_for_update()
    granted: dict[int, int] = {}
    for row in list(await conn.execute(query)):
        rate = float(row.send_rate)
        elapsed = (now - row.rate_updated_at).total_seconds() if row.rate_updated_at else rate
        tokens = min(rate, float(row.rate_tokens) + max(0.0, elapsed) * rate)
        take = min(int(tokens), demand[row.id])
        granted[int(row.id)] = take
        await conn.execute(
            update(rcs_agents)
            .where(rcs_agents.c.id == row.id)
            .values(rate_tokens=tokens - take, rate_updated_at=now)
        )
    return granted


async def set_send_rate(conn: AsyncConnection, agent_id: int, rate: int | None) -> bool:
    result = await conn.execute(
        update(rcs_agents)
        .where(rcs_agents.c.id == agent_id)
        .values(send_rate=rate, rate_tokens=0, rate_updated_at=None)
    )
    return result.rowcount == 1
