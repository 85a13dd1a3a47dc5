"""webhook outbox: partial indexes over pending deliveries only

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

The sender's two lookups (due deliveries in order; a message's pending deliveries) read only pending
rows. Indexes restricted to them stay as small as the backlog, however many deliveries the outbox
has kept, and give the sender's ORDER BY … LIMIT directly, whatever the planner's row estimates
(on PostgreSQL a bitmap scan and sort of the whole pending set had been chosen on stale statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = "status = 'pending'"


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_status_next_attempt_at")
        batch_op.drop_index("ix_webhook_deliveries_message_id")
        batch_op.create_index(
            "ix_webhook_deliveries_pending_due",
            ["next_attempt_at", "id"],
            unique=False,
            sqlite_where=sa.text(_PENDING),
            postgresql_where=sa.text(_PENDING),
        )
        batch_op.create_index(
            "ix_webhook_deliveries_pending_message",
            ["message_id", "id"],
            unique=False,
            sqlite_where=sa.text(_PENDING),
            postgresql_where=sa.text(_PENDING),
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_pending_message")
        batch_op.drop_index("ix_webhook_deliveries_pending_due")
        batch_op.create_index("ix_webhook_deliveries_message_id", ["message_id"], unique=False)
        batch_op.create_index(
            "ix_webhook_deliveries_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
