"""messages per account and day, kept by triggers; delivered_at sort index with id

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

`GET /api/messages` must answer an exact total for up to 92 days of an account's messages. The
triggers below keep `message_day_counts` exact at every commit, whatever code path inserts,
deletes (also by cascade from accounts) or moves a message; see tables.message_day_counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row per (account, day) in slot 0; SQLite runs one writer at a time, so a counter row is never
# contended. AFTER UPDATE OF fires only for UPDATEs that set these columns (none does today).
SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER message_day_counts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO message_day_counts (account_id, day, slot, count, min_id, max_id)
        VALUES (NEW.account_id, date(NEW.created_at), 0, 1, NEW.id, NEW.id)
        ON CONFLICT (account_id, day, slot) DO UPDATE SET
            count = count + 1, min_id = min(min_id, excluded.min_id), max_id = max(max_id, excluded.max_id);
    END
    """,
    """
    CREATE TRIGGER message_day_counts_delete AFTER DELETE ON messages BEGIN
        UPDATE message_day_counts SET count = count - 1
        WHERE account_id = OLD.account_id AND day = date(OLD.created_at) AND slot = 0;
    END
    """,
    """
    CREATE TRIGGER message_day_counts_move AFTER UPDATE OF account_id, created_at ON messages
    WHEN OLD.account_id IS NOT NEW.account_id OR date(OLD.created_at) IS NOT date(NEW.created_at) BEGIN
        UPDATE message_day_counts SET count = count - 1
        WHERE account_id = OLD.account_id AND day = date(OLD.created_at) AND slot = 0;
        INSERT INTO message_day_counts (account_id, day, slot, count, min_id, max_id)
        VALUES (NEW.account_id, date(NEW.created_at), 0, 1, NEW.id, NEW.id)
        ON CONFLICT (account_id, day, slot) DO UPDATE SET
            count = count + 1, min_id = min(min_id, excluded.min_id), max_id = max(max_id, excluded.max_id);
    END
    """,
]

# PostgreSQL: each INSERT or DELETE statement on messages only ever adds rows here, one per account
# and day it touched (statement-level triggers with transition tables: a campaign's or a batch of
# sends' single multi-row INSERT adds one), so concurrent writers never wait on each other and no
# lock order is imposed on them. Slots: the largest message id of the group for inserts (unique, as
# every message belongs to one INSERT), negative numbers from message_day_counts_slot_seq otherwise.
# Folding a day's rows into slot 0 happens at commit, once per transaction and day, in one
# transaction in 32 or so (those that insert or delete a message whose id is a multiple of 32: a
# campaign's always do). A fold is skipped if another transaction of the account holds the fold
# (advisory lock 3520 = 0x0DC0 per account, tried and never waited for; contact_book uses 0x0C0B),
# or if the transaction reads a snapshot older than its statement (it might delete rows that
# another fold already took). Only folds delete rows or touch slot 0, serialised per account:
# nothing here ever waits.
# (Being deferred, a pending fold keeps a transaction that inserted messages from altering or
# indexing the messages table before SET CONSTRAINTS ALL IMMEDIATE, as bench/queries.py's loader
# does.)
PG_STATEMENTS = [
    "CREATE SEQUENCE message_day_counts_slot_seq",
    """
    CREATE FUNCTION message_day_counts_fold(p_account bigint, p_day date) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('transaction_isolation') <> 'read committed'
           OR NOT pg_try_advisory_xact_lock(3520, hashint8(p_account)) THEN
            RETURN;
        END IF;
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
    END $$
    """,
    """
    CREATE FUNCTION message_day_counts_fold_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        v_row messages := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        v_key text := ';' || v_row.account_id || ':' || v_row.created_at::date || ';';
        v_done text := coalesce(current_setting('rcsgate.day_counts_folded', true), '');
    BEGIN
        IF position(v_key IN v_done) = 0 THEN
            PERFORM set_config('rcsgate.day_counts_folded', v_done || v_key, true);
            PERFORM message_day_counts_fold(v_row.account_id, v_row.created_at::date);
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION message_day_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_day_counts (account_id, day, slot, count, min_id, max_id)
        SELECT account_id, created_at::date, max(id), count(*), min(id), max(id)
        FROM added GROUP BY account_id, created_at::date;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION message_day_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_day_counts (account_id, day, slot, count, min_id, max_id)
        SELECT account_id, created_at::date, -nextval('message_day_counts_slot_seq'), -count(*), NULL, NULL
        FROM removed GROUP BY account_id, created_at::date;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION message_day_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_day_counts (account_id, day, slot, count, min_id, max_id) VALUES
            (OLD.account_id, OLD.created_at::date, -nextval('message_day_counts_slot_seq'), -1, NULL, NULL),
            (NEW.account_id, NEW.created_at::date, -nextval('message_day_counts_slot_seq'), 1, NEW.id, NEW.id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER message_day_counts_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION message_day_counts_insert()
    """,
    """
    CREATE TRIGGER message_day_counts_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION message_day_counts_delete()
    """,
    """
    CREATE TRIGGER message_day_counts_move AFTER UPDATE OF account_id, created_at ON messages
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id
                       OR OLD.created_at::date IS DISTINCT FROM NEW.created_at::date)
    EXECUTE FUNCTION message_day_counts_move()
    """,
    """
    CREATE CONSTRAINT TRIGGER message_day_counts_fold_insert AFTER INSERT ON messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.id % 32 = 0)
    EXECUTE FUNCTION message_day_counts_fold_at_commit()
    """,
    """
    CREATE CONSTRAINT TRIGGER message_day_counts_fold_delete AFTER DELETE ON messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.id % 32 = 0)
    EXECUTE FUNCTION message_day_counts_fold_at_commit()
    """,
]


SQLITE_BACKFILL = """
    INSERT INTO message_day_counts (account_id, day, slot, count, min_id, max_id)
    SELECT account_id, date(created_at), 0, count(*), min(id), max(id) FROM messages
    GROUP BY account_id, date(created_at)
"""
PG_BACKFILL = """
    INSERT INTO message_day_counts (account_id, day, slot, count, min_id, max_id)
    SELECT account_id, created_at::date, 0, count(*), min(id), max(id) FROM messages
    GROUP BY account_id, created_at::date
"""


def upgrade() -> None:
    op.create_table(
        "message_day_counts",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("min_id", sa.BigInteger(), nullable=True),
        sa.Column("max_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint(
            "account_id",
            "day",
            "slot",
            name=op.f("pk_message_day_counts"),
            postgresql_include=["count", "min_id", "max_id"],
        ),
    )
    op.drop_index("ix_messages_account_id_delivered_at", table_name="messages")
    op.create_index(
        "ix_messages_account_id_delivered_at_id",
        "messages",
        ["account_id", "delivered_at", "id"],
        unique=False,
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Triggers first, then the backfill, in one transaction: on PostgreSQL CREATE TRIGGER locks out
    # writers of messages until the commit, so no message is counted twice or missed.
    for statement in SQLITE_TRIGGERS if sqlite else PG_STATEMENTS:
        op.execute(statement)
    op.execute(SQLITE_BACKFILL if sqlite else PG_BACKFILL)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    triggers = ["message_day_counts_insert", "message_day_counts_delete", "message_day_counts_move"]
    if not sqlite:
        triggers += ["message_day_counts_fold_insert", "message_day_counts_fold_delete"]
    for name in triggers:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + ("" if sqlite else " ON messages"))
    if not sqlite:
        for function in (
            "message_day_counts_insert()",
            "message_day_counts_delete()",
            "message_day_counts_move()",
            "message_day_counts_fold_at_commit()",
            "message_day_counts_fold(bigint, date)",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
        op.execute("DROP SEQUENCE IF EXISTS message_day_counts_slot_seq")
    op.drop_index("ix_messages_account_id_delivered_at_id", table_name="messages")
    op.create_index(
        "ix_messages_account_id_delivered_at", "messages", ["account_id", "delivered_at"], unique=False
    )
    op.drop_table("message_day_counts")
