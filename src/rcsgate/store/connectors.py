"""Queries on configured connectors, the agents and senders routed to them, and upstream events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.domain.records import ConnectorRecord
from rcsgate.store.tables import connectors, rcs_agents, sms_senders, upstream_events, upstream_events_pending


def _record(row: Any) -> ConnectorRecord:
    return ConnectorRecord(
        id=int(row.id),
        name=row.name,
        kind=row.kind,
        config=json.loads(row.config),
        secrets=json.loads(row.secrets),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def insert_connector(
    conn: AsyncConnection,
    *,
    name: str,
    kind: str,
    config: dict[str, Any],
    secrets: dict[str, Any],
    now: datetime,
) -> int:
    result = await conn.execute(
        insert(connectors)
        .values(
            name=name,
            kind=kind,
            config=json.dumps(config, sort_keys=True),
            secrets=json.dumps(secrets, sort_keys=True),
            created_at=now,
            updated_at=now,
        )
        .returning(connectors.c.id)
    )
    return int(result.scalar_one())


async def get_by_name(conn: AsyncConnection, name: str) -> ConnectorRecord | None:
    row = (await conn.execute(select(connectors).where(connectors.c.name == name))).first()
    return _record(row) if row else None


async def list_all(conn: AsyncConnection) -> list[ConnectorRecord]:
    return [_record(r) for r in await conn.execute(select(connectors).order_by(connectors.c.name))]


async def fingerprint(conn: AsyncConnection) -> list[tuple[int, str, datetime]]:
    """What changes when any connector does: a cheap look before reloading them all."""
    rows = await conn.execute(select(connectors.c.id, connectors.c.name, connectors.c.updated_at))
    return sorted((int(r.id), r.name, r.updated_at) for r in rows)


async def has_kind(conn: AsyncConnection, kind: str) -> bool:
    row = (await conn.execute(select(connectors.c.id).where(connectors.c.kind == kind).limit(1))).first()
    return row is not None


async def delete_connector(conn: AsyncConnection, connector_id: int) -> None:
    # Its events go with it (cascade), so their pending rows too (no foreign key: see tables.py).
    events = select(upstream_events.c.id).where(upstream_events.c.connector_id == connector_id)
    await conn.execute(delete(upstream_events_pending).where(upstream_events_pending.c.event_id.in_(events)))
    await conn.execute(delete(connectors).where(connectors.c.id == connector_id))


async def users_of(conn: AsyncConnection, connector_id: int) -> tuple[list[int], list[int]]:
    """Ids of the agents and the senders routed to the connector."""
    agents = await conn.execute(
        select(rcs_agents.c.id).where(rcs_agents.c.connector_id == connector_id).order_by(rcs_agents.c.id)
    )
    senders = await conn.execute(
        select(sms_senders.c.id).where(sms_senders.c.connector_id == connector_id).order_by(sms_senders.c.id)
    )
    return [int(r.id) for r in agents], [int(r.id) for r in senders]


async def set_agent_connector(conn: AsyncConnection, agent_id: int, connector_id: int | None) -> bool:
    result = await conn.execute(
        update(rcs_agents).where(rcs_agents.c.id == agent_id).values(connector_id=connector_id)
    )
    return result.rowcount == 1


async def set_sender_connector(conn: AsyncConnection, sender_id: int, connector_id: int | None) -> bool:
    result = await conn.execute(
        update(sms_senders).where(sms_senders.c.id == sender_id).values(connector_id=connector_id)
    )
    return result.rowcount == 1


async def agent_routes(conn: AsyncConnection) -> dict[int, str]:
    """Agent id → connector name, for the agents routed to a connector (the rest use the simulator)."""
    rows = await conn.execute(
        select(rcs_agents.c.id, connectors.c.name).join(
            connectors, connectors.c.id == rcs_agents.c.connector_id
        )
    )
    return {int(r.id): r.name for r in rows}


async def agent_connector_kinds(conn: AsyncConnection, agent_ids: list[int]) -> dict[int, str]:
    """Agent id → the kind of the connector it is routed to (absent: the simulator)."""
    if not agent_ids:
        return {}
    rows = await conn.execute(
        select(rcs_agents.c.id, connectors.c.kind)
        .join(connectors, connectors.c.id == rcs_agents.c.connector_id)
        .where(rcs_agents.c.id.in_(agent_ids))
    )
    return {int(r.id): r.kind for r in rows}


async def agent_connector_names(conn: AsyncConnection, agent_ids: list[int]) -> dict[int, str]:
    if not agent_ids:
        return {}
    rows = await conn.execute(
        select(rcs_agents.c.id, connectors.c.name)
        .join(connectors, connectors.c.id == rcs_agents.c.connector_id)
        .where(rcs_agents.c.id.in_(agent_ids))
    )
    return {int(r.id): r.name for r in rows}


async def accounts_routed_to(conn: AsyncConnection, connector_id: int) -> list[int]:
    rows = await conn.execute(
        select(rcs_agents.c.account_id).where(rcs_agents.c.connector_id == connector_id).distinct()
    )
    return sorted(int(r.account_id) for r in rows)


# One statement whatever the batch's size (see keep_events); the arrays in this column order.
_KEPT_COLUMNS: Final = (
    "connector_id",
    "event_key",
    "kind",
    "account_id",
    "message_id",
    "phone",
    "payload",
    "received_at",
)
# Each event kept now is also pending (upstream_events_pending), in the same round trip.
_KEEP_EVENTS_PG: Final = (
    "WITH kept AS (INSERT INTO upstream_events "
    "(connector_id, event_key, kind, account_id, message_id, phone, payload, received_at) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], "
    "$7::text[], $8::timestamp[]) "
    "ON CONFLICT (connector_id, event_key) DO NOTHING RETURNING connector_id, event_key, id, received_at), "
    "pending AS (INSERT INTO upstream_events_pending (event_id, received_at) SELECT id, received_at FROM kept) "
    "SELECT connector_id, event_key, id FROM kept"
)


async def keep_events(conn: AsyncConnection, rows: list[dict[str, Any]]) -> dict[tuple[int, str], int]:
    """Store upstream events under their keys, each pending until ``mark_applied``; (connector id,
    key) → row id of those stored now (a key kept before is left out: that event was stored, and
    is applied or pending, already)."""
    if not rows:
        return {}
    # In key order: two transactions keeping some of the same keys (a redelivered event) then wait
    # for each other in one order, never in a cycle.
    rows = sorted(rows, key=lambda row: (row["connector_id"], row["event_key"]))
    if conn.dialect.name == "postgresql":
        # Each column as one array: a statement whose text is the same for any batch, so asyncpg's
        # prepared statement is reused. The multi-row VALUES form was compiled anew for every batch
        # of the RBM ingress, ~10 % of the API process's CPU (py-spy, 2026-12-04).
        arrays = [[row[c] for row in rows] for c in _KEPT_COLUMNS]
        # received_at as UtcDateTime stores it: naive UTC.
        arrays[-1] = [at.astimezone(UTC).replace(tzinfo=None) for at in arrays[-1]]
        kept = await conn.exec_driver_sql(_KEEP_EVENTS_PG, tuple(arrays))
        return {(int(r.connector_id), str(r.event_key)): int(r.id) for r in kept}
    query = (
        sqlite_insert(upstream_events)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["connector_id", "event_key"])
        .returning(
            upstream_events.c.connector_id,
            upstream_events.c.event_key,
            upstream_events.c.id,
            upstream_events.c.received_at,
        )
    )
    stored = list(await conn.execute(query))
    if stored:
        await conn.execute(
            insert(upstream_events_pending).values(
                [{"event_id": r.id, "received_at": r.received_at} for r in stored]
            )
        )
    return {(int(r.connector_id), str(r.event_key)): int(r.id) for r in stored}


_MARK_APPLIED_PG: Final = (
    "DELETE FROM upstream_events_pending WHERE event_id = ANY($1::bigint[]) RETURNING event_id"
)


async def mark_applied(conn: AsyncConnection, ids: Sequence[int]) -> set[int]:
    """Take stored events off the pending list, compare-and-set on their being on it: the ids this
    transaction is now the one to apply (another applier's are left out; on PostgreSQL a concurrent
    one waits for this transaction's outcome first)."""
    if not ids:
        return set()
    ordered = sorted(set(ids))  # row locks in one order: two appliers never wait in a cycle
    if conn.dialect.name == "postgresql":
        marked = await conn.exec_driver_sql(_MARK_APPLIED_PG, (ordered,))
    else:
        p = upstream_events_pending.c
        marked = await conn.execute(
            delete(upstream_events_pending).where(p.event_id.in_(ordered)).returning(p.event_id)
        )
    return {int(r.event_id) for r in marked}


async def unapplied_events(conn: AsyncConnection, *, received_before: datetime, limit: int) -> list[Any]:
    """Stored events not applied yet that arrived before ``received_before``, oldest first."""
    c, p = upstream_events.c, upstream_events_pending.c
    rows = await conn.execute(
        select(c.id, c.connector_id, c.event_key, c.payload)
        .join(upstream_events_pending, p.event_id == c.id)
        .where(p.received_at < received_before)
        .order_by(p.event_id)
        .limit(limit)
    )
    return list(rows)


async def get_by_ids(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, ConnectorRecord]:
    rows = await conn.execute(select(connectors).where(connectors.c.id.in_(sorted(set(ids)))))
    return {record.id: record for record in map(_record, rows)}
