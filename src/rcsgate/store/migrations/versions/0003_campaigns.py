"""campaigns, contact groups, agent send rates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("sender", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("message_type", sa.String(length=8), server_default="rcs", nullable=False),
        sa.Column("source", sa.String(length=8), server_default="rest", nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_reason", sa.String(length=50), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tariff_id", sa.BigInteger(), nullable=True),
        sa.Column("calculated_price", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_phones", sa.Integer(), server_default="0", nullable=False),
        sa.Column("has_sms_alternative", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=True),
        sa.Column("real_start_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('creation', 'scheduled', 'sending', 'done', 'paused', 'stopped', 'spam', 'moderation')",
            name=op.f("ck_campaigns_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_campaigns_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index("ix_campaigns_account_id_id", ["account_id", "id"], unique=False)
        batch_op.create_index("ix_campaigns_status", ["status"], unique=False)

    op.create_table(
        "contact_groups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("is_default", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_contact_groups_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_groups")),
    )
    with op.batch_alter_table("contact_groups", schema=None) as batch_op:
        batch_op.create_index("ix_contact_groups_account_id", ["account_id"], unique=False)

    op.create_table(
        "contact_group_members",
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_group_members_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["contact_groups.id"],
            name=op.f("fk_contact_group_members_group_id_contact_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "contact_id", name=op.f("pk_contact_group_members")),
    )
    with op.batch_alter_table("contact_group_members", schema=None) as batch_op:
        batch_op.create_index("ix_contact_group_members_contact_id", ["contact_id"], unique=False)

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fields", sa.Text(), nullable=True))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_campaign_id_type_status",
            ["campaign_id", "type", "status", "fail_reason"],
            unique=False,
        )

    with op.batch_alter_table("rcs_agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_rate", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rate_tokens", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("rate_updated_at", sa.DateTime(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_rcs_agents_send_rate"), "send_rate IS NULL OR send_rate > 0"
        )


def downgrade() -> None:
    raise NotImplementedError("rcsgate migrations are forward-only")
