"""RCS agents and SMS senders of an account."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound
from rcsgate.domain.iso_codes import normalize_country
from rcsgate.domain.records import RcsAgent, SmsSender
from rcsgate.domain.validation import check_rcs_agent_name, check_sms_sender
from rcsgate.store import accounts as account_store
from rcsgate.store import senders as store
from rcsgate.store.db import Database

AGENT_STATUSES = ("active", "blocked", "registering")


async def create_agent(
    db: Database,
    clock: Clock,
    *,
    account_id: int,
    name: str,
    country: str,
    status: str = "active",
    is_test: bool = False,
) -> RcsAgent:
    try:
        name = check_rcs_agent_name(name)
        country = normalize_country(country)
    except ValueError as exc:
        raise InvalidInput.field("agent", str(exc)) from exc
    if status not in AGENT_STATUSES:
        raise InvalidInput.field("status", f"status must be one of {', '.join(AGENT_STATUSES)}")
    try:
        async with db.write() as conn:
            if await account_store.get_account(conn, account_id) is None:
                raise NotFound(f"Account {account_id} was not found.")
            agent_id = await store.insert_agent(
                conn,
                account_id=account_id,
                name=name,
                country=country,
                status=status,
                is_test=is_test,
                created_at=clock.now(),
            )
            agent = await store.get_agent(conn, agent_id)
    except IntegrityError as exc:
        raise InvalidInput.field("name", f"The account already has an RCS agent named {name!r}.") from exc
    assert agent is not None
    return agent


async def list_agents(db: Database, *, account_id: int | None = None) -> list[RcsAgent]:
    async with db.read() as conn:
        return await store.list_agents(conn, account_id)


async def set_agent_status(db: Database, *, agent_id: int, status: str) -> RcsAgent:
    if status not in AGENT_STATUSES:
        raise InvalidInput.field("status", f"status must be one of {', '.join(AGENT_STATUSES)}")
    async with db.write() as conn:
        if not await store.set_agent_status(conn, agent_id, status):
            raise NotFound(f"RCS agent {agent_id} was not found.")
        agent = await store.get_agent(conn, agent_id)
    assert agent is not None
    return agent


async def create_sender(
    db: Database,
    clock: Clock,
    *,
    account_id: int,
    name: str,
    country: str | None = None,
    is_default: bool = False,
) -> SmsSender:
    try:
        name = check_sms_sender(name)
        country = normalize_country(country) if country else None
    except ValueError as exc:
        raise InvalidInput.field("sender", str(exc)) from exc
    try:
        async with db.write() as conn:
            if await account_store.get_account(conn, account_id) is None:
                raise NotFound(f"Account {account_id} was not found.")
            await store.insert_sender(
                conn,
                account_id=account_id,
                name=name,
                country=country,
                status="active",
                is_default=is_default,
                created_at=clock.now(),
            )
            sender = await store.get_sender_by_name(conn, account_id, name)
    except IntegrityError as exc:
        raise InvalidInput.field("name", f"The account already has an SMS sender named {name!r}.") from exc
    assert sender is not None
    return sender


async def list_senders(db: Database, *, account_id: int | None = None) -> list[SmsSender]:
    async with db.read() as conn:
        return await store.list_senders(conn, account_id)


async def set_send_rate(db: Database, *, agent_id: int, rate: int | None) -> RcsAgent:
    """Messages per second this agent may send across all workers (None: unlimited)."""
    if rate is not None and rate <= 0:
        raise InvalidInput.field("rate", "The rate must be a positive number of messages per second.")
    async with db.write() as conn:
        if not await store.set_send_rate(conn, agent_id, rate):
            raise NotFound(f"RCS agent {agent_id} was not found.")
        agent = await store.get_agent(conn, agent_id)
    assert agent is not None
    return agent
