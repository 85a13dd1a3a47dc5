"""Messages: partial indexes for the expiry sweep and for lapsed claims; id in the status index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

The dispatchers' sweeps looked for messages past their validity (`accepted` or `sent`) and for
claims whose lease ran out (`sending`) through the (status, due_at) index, so each sweep read every
row in those statuses: a sent message can wait hours for its report, and at 60,000 sent RBM messages
the expiry sweep read them all, ~50 ms each second per process. On PostgreSQL that index also keeps
an entry for every old version of a row until VACUUM, which bitmap scans never mark dead: the lease
sweep read 200,000 dead `sending` entries after a 100,000-message run on a server without
autovacuum. Each new index holds only the rows its sweep acts on, in the order it reads them, so a
sweep reads what is due and stops (docs/PERFORMANCE.md). On PostgreSQL the expiry index's
condition also names expires_at, which every sweep compares: a claim (`status = 'accepted'`, no
expires_at) must not find it usable, or a planner without statistics takes it.

The status index gains `id`: a campaign's messages share one due_at, and a claim (ORDER BY due_at,
id, 200 at a time) read and sorted every waiting message of the campaign for each batch, ~40 ms
at 40,000 waiting on PostgreSQL, against 0.3 ms reading the first 200 in index order.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As tables.EXPIRING_CONDITION(_PG) and SENDING_CONDITION (a migration keeps its own copy):
# (name, column, SQLite's condition, PostgreSQL's condition).
_INDEXES = (
    (
        "ix_messages_expiry",
        "expires_at",
        "status IN ('accepted', 'sent')",
        "status IN ('accepted', 'sent') AND expires_at IS NOT NULL",
    ),
    ("ix_messages_sending_lease", "lease_until", "status = 'sending'", "status = 'sending'"),
)


def upgrade() -> None:
    op.drop_index("ix_messages_status_due_at", table_name="messages")
    op.create_index("ix_messages_status_due_at_id", "messages", ["status", "due_at", "id"], unique=False)
    for name, column, sqlite_condition, pg_condition in _INDEXES:
        op.create_index(
            name,
            "messages",
            [column],
            unique=False,
            sqlite_where=sa.text(sqlite_condition),
            postgresql_where=sa.text(pg_condition),
        )


def downgrade() -> None:
    for name, *_ in _INDEXES:
        op.drop_index(name, table_name="messages")
    op.drop_index("ix_messages_status_due_at_id", table_name="messages")
    op.create_index("ix_messages_status_due_at", "messages", ["status", "due_at"], unique=False)
