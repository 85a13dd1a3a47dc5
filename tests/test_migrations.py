"""Migrations bring an empty database to exactly the schema the code declares, on both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from rcsgate.store.db import Database
from rcsgate.store.migrate import head_revision, upgrade
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
