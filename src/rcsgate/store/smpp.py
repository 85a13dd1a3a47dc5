"""Queries on SMS parts an SMSC accepted (``smpp_parts``) and on SMS routes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.store.bulk import in_values
from rcsgate.store.tables import connectors, routes, smpp_parts, sms_senders


def _upsert(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


async def accepted_parts(conn: AsyncConnection, message_id: int) -> dict[int, str]:
    """Part number → SMSC id of the message's parts some SMSC has accepted (on any connector)."""
    rows = await conn.execute(
        select(smpp_parts.c.part_no, smpp_parts.c.smsc_id).where(smpp_parts.c.message_id == message_id)
    )
    return {int(r.part_no): r.smsc_id for r in rows if r.part_no is not None}


@dataclass(frozen=True, slots=True)
class AcceptedPart:
    smsc_id: str
    message_id: int
    part_no: int
    parts: int


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    smsc_id: str
    state: str  # delivered | undelivered
    stat: str
    err: str | None


async def record_accepted(
    conn: AsyncConnection, connector_id: int, items: Sequence[AcceptedPart], now: datetime
) -> None:
    """Map the SMSC's ids to our parts. A receipt kept before (it overtook the answer) is joined to
    its part here; a second answer with the same id changes nothing."""
    if not items:
        return
    items = list({item.smsc_id: item for item in items}.values())  # one row per id per statement
    upsert = _upsert(conn)
    query = upsert(smpp_parts).values(
        [
            {
                "connector_id": connector_id,
                "smsc_id": item.smsc_id,
                "message_id": item.message_id,
                "part_no": item.part_no,
                "parts": item.parts,
                "state": "submitted",
                "created_at": now,
                "updated_at": now,
            }
            for item in items
        ]
    )
    query = query.on_conflict_do_update(
        index_elements=["connector_id", "smsc_id"],
        set_={
            "message_id": query.excluded.message_id,
            "part_no": query.excluded.part_no,
            "parts": query.excluded.parts,
            "updated_at": query.excluded.updated_at,
        },
        where=smpp_parts.c.message_id.is_(None),
    )
    await conn.execute(query)


async def record_receipts(
    conn: AsyncConnection, connector_id: int, items: Sequence[ReceiptRow], now: datetime
) -> list[int]:
    """Apply final receipts to their parts (a part's first final receipt wins; a redelivered one
    changes nothing). A receipt for an id not known yet is kept for its answer. The ids of the
    messages whose parts changed."""
    if not items:
        return []
    upsert = _upsert(conn)
    query = upsert(smpp_parts).values(
        [
            {
                "connector_id": connector_id,
                "smsc_id": item.smsc_id,
                "state": item.state,
                "stat": item.stat[:16],
                "err": item.err[:16] if item.err else None,
                "created_at": now,
                "updated_at": now,
            }
            for item in items
        ]
    )
    query = query.on_conflict_do_update(
        index_elements=["connector_id", "smsc_id"],
        set_={
            "state": query.excluded.state,
            "stat": query.excluded.stat,
            "err": query.excluded.err,
            "updated_at": query.excluded.updated_at,
        },
        where=smpp_parts.c.state.in_(("submitted", "enroute")),
    )
    rows = await conn.execute(query.returning(smpp_parts.c.message_id))
    return sorted({int(r.message_id) for r in rows if r.message_id is not None})


@dataclass(frozen=True, slots=True)
class PartsOutcome:
    status: str  # delivered | undelivered
    reason: str | None


async def outcomes(conn: AsyncConnection, message_ids: Sequence[int]) -> dict[int, PartsOutcome]:
    """What the receipts say of each message: undelivered as soon as one part finally failed,
    delivered once every part was delivered; absent while parts are still on their way."""
    if not message_ids:
        return {}
    rows = await conn.execute(
        select(
            smpp_parts.c.message_id,
            smpp_parts.c.part_no,
            smpp_parts.c.parts,
            smpp_parts.c.state,
            smpp_parts.c.stat,
            smpp_parts.c.err,
        )
        .where(in_values(conn, smpp_parts.c.message_id, message_ids))
        .order_by(smpp_parts.c.message_id, smpp_parts.c.part_no)
    )
    delivered: dict[int, set[int]] = {}
    total: dict[int, int] = {}
    result: dict[int, PartsOutcome] = {}
    for r in rows:
        mid = int(r.message_id)
        total[mid] = max(total.get(mid, 0), int(r.parts or 1))
        if r.state == "undelivered" and mid not in result:
            reason = r.stat or "undelivered"
            if r.err:
                reason = f"{reason} err:{r.err}"
            result[mid] = PartsOutcome("undelivered", reason)
        elif r.state == "delivered":
            delivered.setdefault(mid, set()).add(int(r.part_no or 1))
    for mid, parts in delivered.items():
        if mid not in result and len(parts) >= total[mid]:
            result[mid] = PartsOutcome("delivered", None)
    return result


# ------------------------------------------------------------------ routes


@dataclass(frozen=True, slots=True)
class Route:
    id: int
    channel: str
    prefix: str
    connectors: list[str]
    created_at: datetime


def _route(row: Any) -> Route:
    return Route(
        id=int(row.id),
        channel=row.channel,
        prefix=row.prefix,
        connectors=list(json.loads(row.connectors)),
        created_at=row.created_at,
    )


async def insert_route(
    conn: AsyncConnection, *, channel: str, prefix: str, names: list[str], now: datetime
) -> int:
    result = await conn.execute(
        insert(routes)
        .values(channel=channel, prefix=prefix, connectors=json.dumps(names), created_at=now)
        .returning(routes.c.id)
    )
    return int(result.scalar_one())


async def list_routes(conn: AsyncConnection) -> list[Route]:
    rows = await conn.execute(select(routes).order_by(routes.c.channel, routes.c.prefix))
    return [_route(r) for r in rows]


async def get_route(conn: AsyncConnection, route_id: int) -> Route | None:
    row = (await conn.execute(select(routes).where(routes.c.id == route_id))).first()
    return _route(row) if row else None


async def delete_route(conn: AsyncConnection, route_id: int) -> bool:
    result = await conn.execute(delete(routes).where(routes.c.id == route_id))
    return result.rowcount == 1


async def sender_routes(conn: AsyncConnection) -> dict[tuple[int, str], str]:
    """(account id, sender name) → connector name, for the SMS senders routed to a connector."""
    rows = await conn.execute(
        select(sms_senders.c.account_id, sms_senders.c.name, connectors.c.name.label("connector")).join(
            connectors, connectors.c.id == sms_senders.c.connector_id
        )
    )
    return {(int(r.account_id), r.name): r.connector for r in rows}


async def accounts_sending_through(conn: AsyncConnection, connector_id: int) -> list[int]:
    rows = await conn.execute(
        select(sms_senders.c.account_id).where(sms_senders.c.connector_id == connector_id).distinct()
    )
    return sorted(int(r.account_id) for r in rows)
