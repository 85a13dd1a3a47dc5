"""Queries on RCS agents and SMS senders."""

from __future__ import annotations

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


async def get_sender_by_name(conn: AsyncConnection, account_id: int, name: str) -> SmsSender | None:
    query = select(sms_senders).where(sms_senders.c.account_id == account_id, sms_senders.c.name == name)
    row = (await conn.execute(query)).first()
    return _sender(row) if row else None


async def list_senders(conn: AsyncConnection, account_id: int | None = None) -> list[SmsSender]:
    query = select(sms_senders).order_by(sms_senders.c.id)
    if account_id is not None:
        query = query.where(sms_senders.c.account_id == account_id)
    return [_sender(r) for r in await conn.execute(query)]
