"""SMPP: the parts an SMSC accepted with their receipts, and SMS routes with failover

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

`smpp_parts` maps an SMSC's message id (per connector, normalised) to our message and part, and
keeps the receipt's stat and err; a receipt that arrives before its submit's answer is kept with no
message and joined when the answer is recorded. `routes` sends a channel's messages (by number
prefix) to the first connector of a list whose link is up.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "smpp_parts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connector_id", sa.BigInteger(), nullable=False),
        sa.Column("smsc_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("part_no", sa.Integer(), nullable=True),
        sa.Column("parts", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("stat", sa.String(length=16), nullable=True),
        sa.Column("err", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "state IN ('submitted', 'enroute', 'delivered', 'undelivered')", name=op.f("ck_smpp_parts_state")
        ),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["connectors.id"],
            name=op.f("fk_smpp_parts_connector_id_connectors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_smpp_parts_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smpp_parts")),
        sa.UniqueConstraint("connector_id", "smsc_id", name="uq_smpp_parts_connector_smsc_id"),
    )
    with op.batch_alter_table("smpp_parts", schema=None) as batch_op:
        batch_op.create_index("ix_smpp_parts_message_id", ["message_id"], unique=False)
    op.create_table(
        "routes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("prefix", sa.String(length=15), server_default="", nullable=False),
        sa.Column("connectors", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("channel IN ('sms')", name=op.f("ck_routes_channel")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("channel", "prefix", name="uq_routes_channel_prefix"),
    )


def downgrade() -> None:
    op.drop_table("routes")
    with op.batch_alter_table("smpp_parts", schema=None) as batch_op:
        batch_op.drop_index("ix_smpp_parts_message_id")
    op.drop_table("smpp_parts")
