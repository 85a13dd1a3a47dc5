"""claim holders: liveness of the processes that claim messages and webhooks

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

`claim_holders` has one row per process that claims work, beaten every second or so while it
lives; `messages.holder_id` and `webhook_deliveries.holder_id` name the holder of a claim (set by
the UPDATE that claims, unindexed). The sweep leader frees the claims of a holder whose beat is
older than the dead threshold, instead of waiting for their leases to end (docs/deploy.md,
"Claims and liveness").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claim_holders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("beat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_holders")),
        # Ids never come back: a claim left with a dead holder's id must not pass for a new one's.
        sqlite_autoincrement=True,
    )
    # A nullable column without a default: no table rewrite on PostgreSQL, none on SQLite either.
    op.add_column("messages", sa.Column("holder_id", sa.BigInteger(), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("holder_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("holder_id")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("holder_id")
    op.drop_table("claim_holders")
