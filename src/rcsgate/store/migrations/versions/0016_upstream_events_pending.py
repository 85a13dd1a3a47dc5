"""upstream_events_pending: the events not applied yet, in a narrow table of their own

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05

Revision 0015 marked an event applied by setting ``upstream_events.applied_at`` (compare-and-set on
null), found the unapplied ones through a partial index on that column, and so wrote every event's
wide row twice: PostgreSQL cannot update a column of an index's predicate in place, so the update
wrote a new version of the row and of its three other indexes. Now a row of
``upstream_events_pending`` is inserted with the event and deleted by the transaction that applies
it (the delete is the compare-and-set). Events unapplied at this revision move there.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upstream_events_pending",
        sa.Column("event_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_upstream_events_pending")),
    )
    op.execute(
        "INSERT INTO upstream_events_pending (event_id, received_at) "
        "SELECT id, received_at FROM upstream_events WHERE applied_at IS NULL"
    )
    op.drop_index("ix_upstream_events_unapplied", table_name="upstream_events")
    with op.batch_alter_table("upstream_events") as batch:
        batch.drop_column("applied_at")


def downgrade() -> None:
    op.add_column("upstream_events", sa.Column("applied_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE upstream_events SET applied_at = received_at "
        "WHERE id NOT IN (SELECT event_id FROM upstream_events_pending)"
    )
    op.create_index(
        "ix_upstream_events_unapplied",
        "upstream_events",
        ["id"],
        unique=False,
        sqlite_where=sa.text("applied_at IS NULL"),
        postgresql_where=sa.text("applied_at IS NULL"),
    )
    op.drop_table("upstream_events_pending")
