"""Messages: the reference and parent indexes only over rows that have one

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

Campaign messages have no reference_id and only SMS fallbacks have a parent_id, yet every message
had an entry in both indexes, written at insert and again at every status update (none of which
is HOT, status being indexed). Every query of these columns compares them with a value, which
implies the new condition, so the same plans use them. Measured with bench/campaigns.py
(5000-recipient accept) and bench/queries.py (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTIAL = (
    ("ix_messages_account_id_reference_id", ["account_id", "reference_id"], "reference_id IS NOT NULL"),
    ("ix_messages_parent_id", ["parent_id"], "parent_id IS NOT NULL"),
)


def upgrade() -> None:
    for name, columns, condition in _PARTIAL:
        op.drop_index(name, table_name="messages")
        op.create_index(
            name,
            "messages",
            columns,
            unique=False,
            sqlite_where=sa.text(condition),
            postgresql_where=sa.text(condition),
        )


def downgrade() -> None:
    for name, columns, _ in _PARTIAL:
        op.drop_index(name, table_name="messages")
        op.create_index(name, "messages", columns, unique=False)
