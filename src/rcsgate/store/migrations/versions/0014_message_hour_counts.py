"""messages per account and UTC hour, kept by triggers

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05

`GET /api/messages` counted a period's whole days from `message_day_counts` and the two partial
days at its ends row by row in the (account_id, created_at) index, so an unfiltered page grew with
the rows of a day: 30 ms for today's 17,896 rows at 5M stored messages, 516 ms after a morning of a
million (docs/PERFORMANCE.md, "Scale"). `message_hour_counts` counts per hour the same way, so only
the partial hours at the ends are read row by row. The triggers mirror 0005's on each engine (the
hour is the number of whole hours since 1970-01-01 UTC); on PostgreSQL the day fold now also folds
the hour rows of that day, in the same transaction under the same advisory lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The hour of created_at, as whole hours since 1970-01-01 UTC: on PostgreSQL from the epoch; on
# SQLite from the text up to the hour ('YYYY-MM-DD HH', how times are stored), as date() takes the
# day, because strftime('%s') of the full time rounds to the millisecond and would count
# 23:59:59.9999 in the next hour (and day).


SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER message_hour_counts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO message_hour_counts (account_id, hour, slot, count, min_id, max_id)
        VALUES (
            NEW.account_id, CAST(strftime('%s', substr(NEW.created_at, 1, 13) || ':00:00') AS INTEGER) / 3600,
            0, 1, NEW.id, NEW.id
        )
        ON CONFLICT (account_id, hour, slot) DO UPDATE SET
            count = count + 1, min_id = min(min_id, excluded.min_id), max_id = max(max_id, excluded.max_id);
    END
    """,
    """
    CREATE TRIGGER message_hour_counts_delete AFTER DELETE ON messages BEGIN
        UPDATE message_hour_counts SET count = count - 1
        WHERE account_id = OLD.account_id AND slot = 0
          AND hour = CAST(strftime('%s', substr(OLD.created_at, 1, 13) || ':00:00') AS INTEGER) / 3600;
    END
    """,
    """
    CREATE TRIGGER message_hour_counts_move AFTER UPDATE OF account_id, created_at ON messages
    WHEN OLD.account_id IS NOT NEW.account_id
      OR substr(OLD.created_at, 1, 13) IS NOT substr(NEW.created_at, 1, 13) BEGIN
        UPDATE message_hour_counts SET count = count - 1
        WHERE account_id = OLD.account_id AND slot = 0
          AND hour = CAST(strftime('%s', substr(OLD.created_at, 1, 13) || ':00:00') AS INTEGER) / 3600;
        INSERT INTO message_hour_counts (account_id, hour, slot, count, min_id, max_id)
        VALUES (
            NEW.account_id, CAST(strftime('%s', substr(NEW.created_at, 1, 13) || ':00:00') AS INTEGER) / 3600,
            0, 1, NEW.id, NEW.id
        )
        ON CONFLICT (account_id, hour, slot) DO UPDATE SET
            count = count + 1, min_id = min(min_id, excluded.min_id), max_id = max(max_id, excluded.max_id);
    END
    """,
]

# As 0005's: statement-level triggers append a row per account and hour a statement touched (an
# insert's slot is the largest id of its rows, other changes take negative slots from
# message_day_counts_slot_seq), and the day fold, run at commit now and then, folds the day's hour
# rows into slot 0 as well.
_FOLD_DAY = """
        WITH taken AS (
            DELETE FROM message_day_counts
            WHERE account_id = p_account AND day = p_day AND slot <> 0
            RETURNING count, min_id, max_id
        )
        INSERT INTO message_day_counts AS c (account_id, day, slot, count, min_id, max_id)
        SELECT p_account, p_day, 0, sum(count), min(min_id), max(max_id) FROM taken HAVING count(*) > 0
        ON CONFLICT (account_id, day, slot) DO UPDATE SET
            count = c.count + excluded.count,
            min_id = least(c.min_id, excluded.min_id),
            max_id = greatest(c.max_id, excluded.max_id);
"""
_FOLD_HOURS = """
        WITH taken AS (
            DELETE FROM message_hour_counts
            WHERE account_id = p_account AND slot <> 0
              AND hour >= (p_day - DATE '1970-01-01') * 24 AND hour < (p_day - DATE '1970-01-01' + 1) * 24
            RETURNING hour, count, min_id, max_id
        )
        INSERT INTO message_hour_counts AS c (account_id, hour, slot, count, min_id, max_id)
        SELECT p_account, hour, 0, sum(count), min(min_id), max(max_id) FROM taken GROUP BY hour
        ON CONFLICT (account_id, hour, slot) DO UPDATE SET
            count = c.count + excluded.count,
            min_id = least(c.min_id, excluded.min_id),
            max_id = greatest(c.max_id, excluded.max_id);
"""


def _fold_function(*bodies: str) -> str:
    return (
        """
    CREATE OR REPLACE FUNCTION message_day_counts_fold(p_account bigint, p_day date) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('transaction_isolation') <> 'read committed'
           OR NOT pg_try_advisory_xact_lock(3520, hashint8(p_account)) THEN
            RETURN;
        END IF;"""
        + "".join(bodies)
        + """
    END $$
    """
    )


PG_STATEMENTS = [
    """
    CREATE FUNCTION message_hour_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_hour_counts (account_id, hour, slot, count, min_id, max_id)
        SELECT account_id, floor(extract(epoch FROM created_at) / 3600)::bigint, max(id), count(*), min(id), max(id)
        FROM added GROUP BY 1, 2;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION message_hour_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_hour_counts (account_id, hour, slot, count, min_id, max_id)
        SELECT account_id, floor(extract(epoch FROM created_at) / 3600)::bigint, -nextval('message_day_counts_slot_seq'), -count(*),
            NULL, NULL
        FROM removed GROUP BY 1, 2;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION message_hour_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_hour_counts (account_id, hour, slot, count, min_id, max_id) VALUES
            (OLD.account_id, floor(extract(epoch FROM OLD.created_at) / 3600)::bigint, -nextval('message_day_counts_slot_seq'), -1,
             NULL, NULL),
            (NEW.account_id, floor(extract(epoch FROM NEW.created_at) / 3600)::bigint, -nextval('message_day_counts_slot_seq'), 1,
             NEW.id, NEW.id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER message_hour_counts_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION message_hour_counts_insert()
    """,
    """
    CREATE TRIGGER message_hour_counts_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION message_hour_counts_delete()
    """,
    """
    CREATE TRIGGER message_hour_counts_move AFTER UPDATE OF account_id, created_at ON messages
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id
                       OR floor(extract(epoch FROM OLD.created_at) / 3600)::bigint IS DISTINCT FROM floor(extract(epoch FROM NEW.created_at) / 3600)::bigint)
    EXECUTE FUNCTION message_hour_counts_move()
    """,
    _fold_function(_FOLD_DAY, _FOLD_HOURS),
]

SQLITE_BACKFILL = """
    INSERT INTO message_hour_counts (account_id, hour, slot, count, min_id, max_id)
    SELECT account_id, (CAST(strftime('%s', substr(messages.created_at, 1, 13) || ':00:00') AS INTEGER) / 3600), 0, count(*), min(id), max(id) FROM messages
    GROUP BY 1, 2
"""
PG_BACKFILL = """
    INSERT INTO message_hour_counts (account_id, hour, slot, count, min_id, max_id)
    SELECT account_id, floor(extract(epoch FROM created_at) / 3600)::bigint, 0, count(*), min(id), max(id) FROM messages
    GROUP BY 1, 2
"""


def upgrade() -> None:
    op.create_table(
        "message_hour_counts",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("min_id", sa.BigInteger(), nullable=True),
        sa.Column("max_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint(
            "account_id",
            "hour",
            "slot",
            name=op.f("pk_message_hour_counts"),
            postgresql_include=["count", "min_id", "max_id"],
        ),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Triggers first, then the backfill, in one transaction (as 0005): no message counted twice or missed.
    for statement in SQLITE_TRIGGERS if sqlite else PG_STATEMENTS:
        op.execute(statement)
    op.execute(SQLITE_BACKFILL if sqlite else PG_BACKFILL)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in ("message_hour_counts_insert", "message_hour_counts_delete", "message_hour_counts_move"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + ("" if sqlite else " ON messages"))
    if not sqlite:
        op.execute(_fold_function(_FOLD_DAY))
        for function in (
            "message_hour_counts_insert()",
            "message_hour_counts_delete()",
            "message_hour_counts_move()",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("message_hour_counts")
