"""webhook outbox: a message's deliveries by index; no unique index on webhook_id

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

Since 0006 only pending deliveries were indexed by message, so a message's page (console, webhook
log) read the whole outbox to find its delivered ones. The unique index on webhook_id goes: no query
reads by it, the ids are 128 random bits, and its random keys made it the outbox's largest index
(14 MB of 161 MB at 120,000 deliveries) and its costliest to write.
On SQLite dropping the constraint rebuilds the table (a copy of the outbox).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_webhook_deliveries_webhook_id", type_="unique")
        batch_op.create_index("ix_webhook_deliveries_message_id", ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_message_id")
        batch_op.create_unique_constraint("uq_webhook_deliveries_webhook_id", ["webhook_id"])
