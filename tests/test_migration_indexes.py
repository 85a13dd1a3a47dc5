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


# --- 0013: the sweeps read their own partial indexes ----------------------------------------------

SWEEP_NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _sweep_plans(url: str) -> dict[str, str]:
    """The plan of each sweep's statement as the store runs it (captured from the driver), on a
    table where most rows are finished and a few are sent, sending or accepted."""
    from datetime import timedelta

    from sqlalchemy import event

    from rcsgate.store import messages as message_store
    from rcsgate.store import pipeline

    upgrade(url)

    async def main() -> dict[str, str]:
        db = Database.from_url(url)
        captured: list[tuple[str, Any]] = []
        event.listen(
            db.engine.sync_engine,
            "before_cursor_execute",
            lambda conn, cursor, statement, parameters, context, many: captured.append(
                (statement, parameters)
            ),
        )

        async def plan_of(run: Any, *setup: str) -> str:
            async with db.engine.begin() as conn:
                captured.clear()
                await run(conn)
                for statement in setup:
                    await conn.exec_driver_sql(statement)
                statements = [c for c in captured if c[0].lstrip().upper().startswith("SELECT")]
                explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
                lines = [
                    str(row[-1])
                    for statement, parameters in statements
                    for row in await conn.exec_driver_sql(explain + statement, parameters)
                ]
                await conn.rollback()
            return " | ".join(lines)

        try:
            async with db.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO accounts (id, name, currency, created_at, webhook_secret) "
                        "VALUES (1, 'a', 'EUR', :now, 's')"
                    ),
                    {"now": NOW},
                )
                # Finished rows, then the statuses a busy run has: accepted, sending, sent.
                rows = [{"expires": NOW + timedelta(seconds=i - 1_000), "now": NOW} for i in range(20_000)]
                await conn.execute(
                    text(
                        "INSERT INTO messages (account_id, type, source, sender, phone, status, content, "
                        "kind, price, reserved, charged, validity_seconds, expires_at, check_stop_list, "
                        "priority, attempts, created_at, lease_until, upstream, due_at, campaign_id) VALUES "
                        "(1, 'rcs', 'rest', 'agent', '380501234567', 'read', '{}', 'text', 0, 0, 0, 3600, "
                        ":expires, false, 0, 0, :now, :expires, 'up', :now, 1)"
                    ),
                    rows,
                )
            async with db.engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE messages SET status = CASE WHEN id % 5 = 0 THEN 'sending' "
                        "WHEN id % 2 = 0 THEN 'sent' ELSE 'accepted' END WHERE id % 10 < 8"
                    )
                )
            plans: dict[str, str] = {}
            if not db.is_sqlite:
                # A claim (`status = 'accepted'`, nothing on expires_at) must not be able to use the
                # expiry index: PostgreSQL without statistics once chose it over the status index,
                # for a bitmap of every entry. With the indexes it should use gone and sequential
                # scans priced out, the planner takes any index it may use.
                plans["claim"] = await plan_of(
                    lambda c: pipeline.due_candidates(c, now=SWEEP_NOW, limit=200, skip_locked=True),
                    "DROP INDEX ix_messages_status_due_at_id",
                    "DROP INDEX ix_messages_campaign_id_type_status",
                    "SET LOCAL enable_seqscan = off",
                )
            sweeps = {
                "expiry": lambda c: message_store.due_for_expiry(
                    c, now=SWEEP_NOW, limit=500, revoking=["up"]
                ),
                "revocation": lambda c: message_store.claim_for_revocation(
                    c, now=SWEEP_NOW, lease_until=SWEEP_NOW, limit=500, revoking=["up"]
                ),
                "lapsed": lambda c: pipeline.reclaim_lapsed(c, now=SWEEP_NOW, limit=500),
            }
            # Without statistics (a server without autovacuum, whose last ANALYZE saw other
            # statuses) and with them.
            for name, sweep in sweeps.items():
                plans[name] = await plan_of(sweep)
            async with db.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
            for name, sweep in sweeps.items():
                plans[name] += " || " + await plan_of(sweep)
            return plans
        finally:
            await db.close()

    return asyncio.run(main())


def _assert_sweeps_use_their_indexes(url: str) -> None:
    plans = _sweep_plans(url)
    assert "ix_messages_expiry" not in plans.get("claim", ""), plans["claim"]
    for sweep, index in (
        ("expiry", "ix_messages_expiry"),
        ("revocation", "ix_messages_expiry"),
        ("lapsed", "ix_messages_sending_lease"),
    ):
        without_statistics, with_statistics = plans[sweep].split(" || ")
        assert index in with_statistics, (sweep, with_statistics)
        # SQLite without statistics (rcsgate runs no ANALYZE there) estimates an equality on the
        # status index at a few rows and keeps to it, as before the new indexes.
        if not url.startswith("sqlite"):
            assert index in without_statistics, (sweep, without_statistics)
    command.downgrade(alembic_config(url), "0012")
    assert not {"ix_messages_expiry", "ix_messages_sending_lease"} & _indexes(url, "messages")
    upgrade(url)
    assert {"ix_messages_expiry", "ix_messages_sending_lease"} <= _indexes(url, "messages")


def test_sqlite_sweeps_read_their_partial_indexes(tmp_path: Path) -> None:
    _assert_sweeps_use_their_indexes(normalize_database_url(f"sqlite:///{tmp_path / 'm.db'}"))


def test_postgresql_sweeps_read_their_partial_indexes(empty_pg_url: str) -> None:
    _assert_sweeps_use_their_indexes(empty_pg_url)


# --- 0014: per-hour counters, backfilled from stored messages, and their triggers --------------


def _hour_counts(url: str) -> list[tuple[int, int]]:
    rows = _sql(
        url,
        "SELECT hour, sum(count) FROM message_hour_counts WHERE account_id = 1 GROUP BY hour ORDER BY hour",
    )
    return [(int(hour), int(total)) for hour, total in rows]


def _insert(url: str, first_id: int, times: list[datetime]) -> None:
    for n, at in enumerate(times):
        _sql(
            url,
            "INSERT INTO messages (id, account_id, type, source, sender, phone, status, content, kind, "
            "price, reserved, charged, validity_seconds, expires_at, check_stop_list, priority, attempts, "
            "created_at) VALUES (:id, 1, 'rcs', 'rest', 'agent', '380501234567', 'read', '{}', 'text', 0, "
            "0, 0, 3600, :at, false, 0, 0, :at)",
            id=first_id + n,
            at=at,
        )


def _exercise_hour_counts(url: str) -> None:
    from datetime import timedelta

    from rcsgate.store.message_counts import hour_of

    h = hour_of(NOW.replace(tzinfo=UTC))
    upgrade(url, "0013")
    _sql(
        url,
        "INSERT INTO accounts (id, name, currency, created_at, webhook_secret) VALUES (1, 'a', 'EUR', :now, 's')",
        now=NOW,
    )
    # Stored before the table exists: the upgrade backfills them (the last one a microsecond before
    # the next hour, which SQLite's strftime('%s') alone would round into it).
    _insert(url, 1, [NOW, NOW + timedelta(minutes=59), NOW + timedelta(hours=1) - timedelta(microseconds=1)])
    upgrade(url)
    assert _hour_counts(url) == [(h, 3)]
    # Kept by the triggers from then on: inserts (id 32 folds on PostgreSQL), a move, a delete.
    _insert(url, 32, [NOW + timedelta(hours=1), NOW + timedelta(hours=3, minutes=30)])
    _sql(url, "UPDATE messages SET created_at = :at WHERE id = 1", at=NOW + timedelta(hours=3))
    _sql(url, "DELETE FROM messages WHERE id = 2")
    assert _hour_counts(url) == [(h, 1), (h + 1, 1), (h + 3, 2)]
    # Down to 0013: the table, its triggers and the fold's hour part are gone; a folding insert works.
    command.downgrade(alembic_config(url), "0013")
    assert "message_hour_counts" not in _tables(url)
    _insert(url, 64, [NOW])
    upgrade(url)
    assert _hour_counts(url) == [(h, 2), (h + 1, 1), (h + 3, 2)]


def _tables(url: str) -> set[str]:
    if url.startswith("sqlite"):
        rows = _sql(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = _sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in rows}


def test_sqlite_hour_counts_backfill_triggers_and_downgrade(tmp_path: Path) -> None:
    _exercise_hour_counts(normalize_database_url(f"sqlite:///{tmp_path / 'm.db'}"))


def test_postgresql_hour_counts_backfill_triggers_and_downgrade(empty_pg_url: str) -> None:
    _exercise_hour_counts(empty_pg_url)
