"""Queries on campaigns and their messages in bulk."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, literal, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store import bulk
from rcsgate.store.tables import (
    campaigns,
    contact_group_members,
    contact_groups,
    contacts,
    message_events,
    messages,
    stop_list,
)


async def insert_campaign(conn: AsyncConnection, **values: Any) -> int:
    result = await conn.execute(insert(campaigns).values(**values).returning(campaigns.c.id))
    return int(result.scalar_one())


async def get(
    conn: AsyncConnection, campaign_id: int, *, account_id: int | None = None, for_update: bool = False
) -> Row[Any] | None:
    query = select(campaigns).where(campaigns.c.id == campaign_id)
    if account_id is not None:
        query = query.where(campaigns.c.account_id == account_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def set_status(
    conn: AsyncConnection, campaign_id: int, *, old: tuple[str, ...], new: str, **values: Any
) -> bool:
    result = await conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(old))
        .values(status=new, **values)
    )
    return result.rowcount == 1


async def insert_messages(
    conn: AsyncConnection, rows: list[dict[str, Any]], shared: dict[str, Any] | None = None
) -> None:
    """A campaign's messages: what differs per recipient in ``rows``, what they share once."""
    await bulk.insert_many(conn, messages, rows, same=shared)


async def record_events_for(
    conn: AsyncConnection,
    *,
    campaign_id: int,
    status: str,
    from_status: str | None,
    at: datetime,
    detail: str | None,
) -> None:
    """One event per campaign message now in ``status``, written by a single INSERT ... SELECT."""
    source = select(
        messages.c.id,
        literal(from_status).label("from_status"),
        messages.c.status,
        literal(detail).label("detail"),
        literal(at, type_=message_events.c.at.type).label("at"),
    ).where(messages.c.campaign_id == campaign_id, messages.c.status == status)
    await conn.execute(
        insert(message_events).from_select(["message_id", "from_status", "status", "detail", "at"], source)
    )


async def move_messages(
    conn: AsyncConnection,
    *,
    campaign_id: int,
    old: str,
    new: str,
    at: datetime,
    detail: str | None = None,
    **values: Any,
) -> int:
    """Bulk compare-and-set of a campaign's messages ``old`` → ``new``, with their events."""
    result = await conn.execute(
        update(messages)
        .where(messages.c.campaign_id == campaign_id, messages.c.status == old, messages.c.reserved == 0)
        .values(status=new, **values)
    )
    if result.rowcount:
        await record_events_for(
            conn, campaign_id=campaign_id, status=new, from_status=old, at=at, detail=detail
        )
    return int(result.rowcount)


async def release_queue(conn: AsyncConnection, *, campaign_id: int, due_at: datetime | None) -> None:
    """Make the campaign's waiting messages due (start, resume) or not due (pause)."""
    condition = [
        messages.c.campaign_id == campaign_id,
        messages.c.status == "accepted",
        messages.c.reserved == 0,
    ]
    await conn.execute(update(messages).where(*condition).values(due_at=due_at))


async def count_status(conn: AsyncConnection, campaign_id: int, status: str) -> int:
    query = select(func.count()).where(messages.c.campaign_id == campaign_id, messages.c.status == status)
    return int((await conn.execute(query)).scalar_one())


async def status_counts(
    conn: AsyncConnection, campaign_ids: list[int]
) -> dict[int, list[tuple[str, str, str | None, int]]]:
    if not campaign_ids:
        return {}
    query = (
        select(
            messages.c.campaign_id, messages.c.type, messages.c.status, messages.c.fail_reason, func.count()
        )
        .where(messages.c.campaign_id.in_(campaign_ids))
        .group_by(messages.c.campaign_id, messages.c.type, messages.c.status, messages.c.fail_reason)
    )
    out: dict[int, list[tuple[str, str, str | None, int]]] = {}
    for cid, kind, status, reason, n in await conn.execute(query):
        out.setdefault(int(cid), []).append((kind, status, reason, int(n)))
    return out


async def total_charged(conn: AsyncConnection, campaign_id: int) -> int:
    query = select(func.coalesce(func.sum(messages.c.charged), 0)).where(
        messages.c.campaign_id == campaign_id
    )
    return int((await conn.execute(query)).scalar_one())


async def due_to_start(conn: AsyncConnection, *, now: datetime) -> list[Row[Any]]:
    query = select(campaigns.c.id).where(
        (campaigns.c.status == "creation")
        | and_(campaigns.c.status == "scheduled", campaigns.c.start_at <= now)
    )
    return list(await conn.execute(query))


async def sending_ids(conn: AsyncConnection) -> list[int]:
    return [
        int(r.id) for r in await conn.execute(select(campaigns.c.id).where(campaigns.c.status == "sending"))
    ]


async def owned_groups(conn: AsyncConnection, account_id: int, group_ids: list[int]) -> set[int]:
    query = select(contact_groups.c.id).where(
        contact_groups.c.account_id == account_id, contact_groups.c.id.in_(group_ids)
    )
    return {int(r.id) for r in await conn.execute(query)}


async def group_phones(conn: AsyncConnection, account_id: int, group_ids: list[int]) -> list[str]:
    """The distinct phones of the groups' contacts, in first-seen order (group order, then contact id)."""
    query = (
        select(contacts.c.phone)
        .join(contact_group_members, contact_group_members.c.contact_id == contacts.c.id)
        .where(contacts.c.account_id == account_id, contact_group_members.c.group_id.in_(group_ids))
        .group_by(contacts.c.phone)
        .order_by(func.min(contacts.c.id))
    )
    return [str(r.phone) for r in await conn.execute(query)]


async def stop_listed(conn: AsyncConnection, account_id: int, phones: list[str], list_type: str) -> set[str]:
    """Which of ``phones`` are on the account's stop list of ``list_type``."""
    # The account's whole list, intersected here: cheaper than binding thousands of IN parameters.
    query = select(stop_list.c.phone).where(
        stop_list.c.account_id == account_id, stop_list.c.type == list_type
    )
    return {str(r.phone) for r in await conn.execute(query)} & set(phones)


async def verified_phones(conn: AsyncConnection, account_id: int, phones: list[str]) -> set[str]:
    """Which of ``phones`` are the account's verified contacts (test mode sends only to those)."""
    query = select(contacts.c.phone).where(
        contacts.c.account_id == account_id,
        contacts.c.verified.is_(True),
        contacts.c.phone.in_(phones),
    )
    return {str(r.phone) for r in await conn.execute(query)}


async def taken_references(conn: AsyncConnection, account_id: int, references: list[str]) -> list[str]:
    """Which of ``references`` a message of the account (not an SMS fallback) already has."""
    query = select(messages.c.reference_id).where(
        messages.c.account_id == account_id,
        messages.c.parent_id.is_(None),
        messages.c.reference_id.in_(references),
    )
    return [str(r.reference_id) for r in await conn.execute(query)]
