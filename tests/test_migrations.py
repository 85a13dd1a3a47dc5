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
