"""upstream_events.applied_at: events stored, answered, and applied in a second step

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

Google's pushes are answered once their events are stored; the events are applied (reports on
messages, user replies) in a transaction of their own that sets ``applied_at``, compare-and-set on
its being null, so that an event is applied once whoever applies it. Events a crash left stored and
unapplied are found through the partial index, which holds only those. Rows stored before this
revision were applied in the transaction that stored them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("upstream_events", sa.Column("applied_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE upstream_events SET applied_at = received_at")
    op.create_index(
        "ix_upstream_events_unapplied",
        "upstream_events",
        ["id"],
        unique=False,
        sqlite_where=sa.text("applied_at IS NULL"),
        postgresql_where=sa.text("applied_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_upstream_events_unapplied", table_name="upstream_events")
    with op.batch_alter_table("upstream_events") as batch:
        batch.drop_column("applied_at")
