"""Migrations 0010 (partial reference and parent indexes on messages) and 0011 (the outbox indexed by
message, webhook_id no longer unique): stored rows survive the upgrade and the downgrade, on both
engines, and a message's webhooks are found by the new index."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import text

from rcsgate.config import normalize_database_url
from rcsgate.store.db import Database
from rcsgate.store.migrate import alembic_config, upgrade

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC).replace(tzinfo=None)


def _sql(url: str, *statements: str, **params: Any) -> list[Any]:
    async def main() -> list[Any]:
        db = Database.from_url(url)
        try:
            async with db.engine.begin() as conn:
                result: list[Any] = []
                for statement in statements:
                    rows = await conn.execute(text(statement), params)
                    result = list(rows) if rows.returns_rows else []
                return result
        finally:
            await db.close()

    return asyncio.run(main())


def _indexes(url: str, table: str) -> set[str]:
    if url.startswith("sqlite"):
        rows = _sql(url, f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}'")
    else:
        rows = _sql(url, f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'")
    return {r[0] for r in rows}


def _exercise(url: str) -> None:
    upgrade(url, "0009")
    _sql(
        url,
        "INSERT INTO accounts (id, name, currency, created_at, webhook_secret) VALUES (1, 'a', 'EUR', :now, 's')",
        "INSERT INTO messages (id, account_id, type, source, sender, phone, status, content, kind, price, "
        "reserved, charged, validity_seconds, expires_at, check_stop_list, priority, attempts, created_at, "
        "reference_id) VALUES (7, 1, 'rcs', 'rest', 'agent', '380501234567', 'sent', '{}', 'text', 0, 0, 0, "
        "3600, :now, false, 0, 0, :now, 'ref7')",
        "INSERT INTO webhook_deliveries (account_id, message_id, kind, url, body, webhook_id, status, "
        "attempts, created_at) VALUES (1, 7, 'status', 'http://x', '{}', 'evt_1', 'delivered', 1, :now)",
        now=NOW,
    )
    upgrade(url)
    assert "ix_webhook_deliveries_message_id" in _indexes(url, "webhook_deliveries")
    assert "uq_webhook_deliveries_webhook_id" not in _indexes(url, "webhook_deliveries")
    # What the message page reads: a delivered webhook, by message.
    found = _sql(url, "SELECT webhook_id FROM webhook_deliveries WHERE account_id = 1 AND message_id = 7")
    assert [r[0] for r in found] == ["evt_1"]
    found = _sql(url, "SELECT id FROM messages WHERE account_id = 1 AND reference_id = 'ref7'")
    assert [r[0] for r in found] == [7]

    command.downgrade(alembic_config(url), "0009")
    assert "ix_webhook_deliveries_message_id" not in _indexes(url, "webhook_deliveries")
    found = _sql(url, "SELECT webhook_id FROM webhook_deliveries WHERE message_id = 7")
    assert [r[0] for r in found] == ["evt_1"]
    upgrade(url)
    assert "ix_webhook_deliveries_message_id" in _indexes(url, "webhook_deliveries")


def test_sqlite_keeps_rows_through_0010_and_0011_both_ways(tmp_path: Path) -> None:
    _exercise(normalize_database_url(f"sqlite:///{tmp_path / 'm.db'}"))


def test_postgresql_keeps_rows_through_0010_and_0011_both_ways(empty_pg_url: str) -> None:
    _exercise(empty_pg_url)
