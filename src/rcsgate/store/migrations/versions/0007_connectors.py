"""connectors as configuration, agents and senders routed to them, upstream events kept once

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Connectors (Google RBM, later SMPP) are rows managed by `rcsgate connectors …`; an RCS agent or an
SMS sender names the connector its messages go through (none: the built-in simulator). Events an
upstream pushes (delivery, read, taps, user replies) are stored under the upstream's own id, once,
in the transaction that applies them, and acknowledged after its commit. Webhooks gain the
`inbound` kind for user replies.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('rbm', 'smpp')", name=op.f("ck_connectors_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connectors")),
        sa.UniqueConstraint("name", name=op.f("uq_connectors_name")),
    )
    with op.batch_alter_table("rcs_agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("connector_id", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_rcs_agents_connector_id_connectors"), "connectors", ["connector_id"], ["id"]
        )
    with op.batch_alter_table("sms_senders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("connector_id", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_sms_senders_connector_id_connectors"), "connectors", ["connector_id"], ["id"]
        )
    op.create_table(
        "upstream_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connector_id", sa.BigInteger(), nullable=False),
        sa.Column("event_key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("phone", sa.String(length=15), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["connectors.id"],
            name=op.f("fk_upstream_events_connector_id_connectors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_events")),
        sa.UniqueConstraint("connector_id", "event_key", name="uq_upstream_events_connector_key"),
    )
    with op.batch_alter_table("upstream_events", schema=None) as batch_op:
        batch_op.create_index("ix_upstream_events_account_id_id", ["account_id", "id"], unique=False)
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_webhook_deliveries_kind"), type_="check")
        batch_op.create_check_constraint("kind", "kind IN ('status', 'click', 'inbound')")


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_webhook_deliveries_kind"), type_="check")
        batch_op.create_check_constraint("kind", "kind IN ('status', 'click')")
    with op.batch_alter_table("upstream_events", schema=None) as batch_op:
        batch_op.drop_index("ix_upstream_events_account_id_id")
    op.drop_table("upstream_events")
    with op.batch_alter_table("sms_senders", schema=None) as batch_op:
        batch_op.drop_constraint("fk_sms_senders_connector_id_connectors", type_="foreignkey")
        batch_op.drop_column("connector_id")
    with op.batch_alter_table("rcs_agents", schema=None) as batch_op:
        batch_op.drop_constraint("fk_rcs_agents_connector_id_connectors", type_="foreignkey")
        batch_op.drop_column("connector_id")
    op.drop_table("connectors")
