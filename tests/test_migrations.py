"""Migrations bring an empty database to exactly the schema the code declares, on both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from rcsgate.store.db import Database
from rcsgate.store.migrate import alembic_config, head_revision, upgrade
from rcsgate.store.tables import metadata


def _diff(url: str) -> tuple[list[Any], str | None]:
    async def main() -> tuple[list[Any], str | None]:
        db = Database.from_url(url)
        try:
            async with db.engine.connect() as conn:

                def compare(sync_conn: Any) -> tuple[list[Any], str | None]:
                    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                    return compare_metadata(ctx, metadata), ctx.get_current_revision()

                return await conn.run_sync(compare)
        finally:
            await db.close()

    return asyncio.run(main())


def test_sqlite_empty_to_head_matches_metadata(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    upgrade(url)  # idempotent
    diff, revision = _diff(url)
    assert diff == []
    assert revision == head_revision()


def test_postgresql_head_matches_metadata(pg_url: str) -> None:
    # pg_url is a fresh database the session migrated from empty.
    upgrade(pg_url)
    diff, revision = _diff(pg_url)
    assert diff == []
    assert revision == head_revision()


def _columns(url: str, table: str) -> set[str]:
    async def main() -> set[str]:
        db = Database.from_url(url)
        try:
            async with db.engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: (
                        {c["name"] for c in inspect(sync).get_columns(table)}
                        if inspect(sync).has_table(table)
                        else set()
                    )
                )
        finally:
            await db.close()

    return asyncio.run(main())


def _down_and_up(url: str) -> None:
    """0012 (claim holders) downgrades to 0011 without them, then upgrades back to the declared schema."""
    upgrade(url)
    assert "holder_id" in _columns(url, "messages")
    command.downgrade(alembic_config(url), "0011")
    assert _columns(url, "claim_holders") == set()
    assert "holder_id" not in _columns(url, "messages") | _columns(url, "webhook_deliveries")
    assert "lease_until" in _columns(url, "messages")
    upgrade(url)
    diff, revision = _diff(url)
    assert diff == []
    assert revision == head_revision()
    assert _columns(url, "claim_holders") == {"id", "label", "started_at", "beat_at"}


def test_sqlite_claim_holders_migration_downgrades_and_upgrades(tmp_path: Path) -> None:
    _down_and_up(f"sqlite:///{tmp_path / 'fresh.db'}")


def test_postgresql_claim_holders_migration_downgrades_and_upgrades(empty_pg_url: str) -> None:
    # A scratch database: the session's shared one stays at head for the other tests.
    _down_and_up(empty_pg_url)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    async def main() -> list[tuple[Any, ...]]:
        db = Database.from_url(url)
        try:
            async with db.engine.begin() as conn:
                result = await conn.exec_driver_sql(query)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            await db.close()

    return asyncio.run(main())


def _pending_events_move(url: str) -> None:
    """0016 moves what 0015 marked unapplied (applied_at null) to upstream_events_pending and drops
    the column; its downgrade marks applied every event not pending."""
    upgrade(url)
    command.downgrade(alembic_config(url), "0015")
    _rows(
        url,
        "INSERT INTO connectors (id, name, kind, config, secrets, created_at, updated_at) "
        "VALUES (7, 'rbm1', 'rbm', '{}', '{}', '2026-12-05 10:00:00', '2026-12-05 10:00:00')",
    )
    _rows(
        url,
        "INSERT INTO upstream_events (id, connector_id, event_key, kind, payload, received_at, applied_at) "
        "VALUES (1, 7, 'a', 'delivered', '{}', '2026-12-05 10:00:01', '2026-12-05 10:00:02'), "
        "(2, 7, 'b', 'read', '{}', '2026-12-05 10:00:03', NULL)",
    )
    upgrade(url)
    assert "applied_at" not in _columns(url, "upstream_events")
    pending = _rows(url, "SELECT event_id, received_at FROM upstream_events_pending")
    assert [(int(event_id), str(at)[:19]) for event_id, at in pending] == [(2, "2026-12-05 10:00:03")]
    command.downgrade(alembic_config(url), "0015")
    applied = _rows(url, "SELECT id, applied_at FROM upstream_events ORDER BY id")
    assert [(int(i), at is None) for i, at in applied] == [(1, False), (2, True)]
    assert _columns(url, "upstream_events_pending") == set()
    upgrade(url)
    diff, revision = _diff(url)
    assert diff == []
    assert revision == head_revision()


def test_sqlite_pending_events_migration_moves_the_unapplied(tmp_path: Path) -> None:
    _pending_events_move(f"sqlite:///{tmp_path / 'fresh.db'}")


def test_postgresql_pending_events_migration_moves_the_unapplied(empty_pg_url: str) -> None:
    _pending_events_move(empty_pg_url)
