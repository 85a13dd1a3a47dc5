"""The schema, as SQLAlchemy Core tables. Alembic migrations must produce exactly this.

Money columns hold integer counts of 10^-7 currency units (see domain.money):
SQLite has no exact decimal type and the ledger must add up to the unit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC, on both engines alike."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("credit_limit", BigInteger, nullable=False, server_default="0"),
    # Sum of open reservations; available funds are balance + credit_limit - reserved.
    Column("reserved", BigInteger, nullable=False, server_default="0"),
    Column("mode", String(4), nullable=False, server_default="live"),
    Column("rcs_callback_url", String(100), nullable=True),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("webhook_secret", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("mode IN ('live', 'test')", name="mode"),
    CheckConstraint("credit_limit >= 0", name="credit_limit"),
    CheckConstraint("reserved >= 0", name="reserved"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    # Enough of the key to recognise it in listings; never enough to use it.
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("mode", String(4), nullable=False),
    Column("label", String(100), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    CheckConstraint("mode IN ('live', 'test')", name="mode"),
    Index("ix_api_keys_account_id", "account_id"),
)

rcs_agents = Table(
    "rcs_agents",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(40), nullable=False),
    Column("country", String(2), nullable=False),
    Column("status", String(16), nullable=False, server_default="registering"),
    Column("is_test", Boolean, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN ('active', 'blocked', 'registering')", name="status"),
    UniqueConstraint("account_id", "name", name="uq_rcs_agents_account_name"),
)

sms_senders = Table(
    "sms_senders",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(15), nullable=False),
    Column("country", String(2), nullable=True),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("is_default", Boolean, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN ('active', 'blocked', 'registering')", name="status"),
    UniqueConstraint("account_id", "name", name="uq_sms_senders_account_name"),
)

tariffs = Table(
    "tariffs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("code", Integer, nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    # The system default: what an account with no tariff of its own is billed by.
    Column("is_default", Boolean, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
)

account_tariffs = Table(
    "account_tariffs",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("tariff_id", BigInteger, ForeignKey("tariffs.id", ondelete="CASCADE"), primary_key=True),
    Column("is_default", Boolean, nullable=False, server_default="0"),
)

prices = Table(
    "prices",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("tariff_id", BigInteger, ForeignKey("tariffs.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("country", String(2), nullable=False),
    Column("price", BigInteger, nullable=False),
    CheckConstraint("channel IN ('rcs', 'sms')", name="channel"),
    CheckConstraint("kind IN ('text', 'single_card', 'carousel', 'sms')", name="kind"),
    CheckConstraint("price >= 0", name="price"),
    UniqueConstraint("tariff_id", "channel", "kind", "country", name="uq_prices_tariff_channel_kind_country"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    # Null for account-level entries (top-ups, adjustments).
    Column("message_id", BigInteger, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("note", String(200), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("kind IN ('topup', 'adjustment', 'reserve', 'charge', 'release')", name="kind"),
    # Money moves once per message and kind, whatever retries or duplicate reports happen.
    UniqueConstraint("message_id", "kind", name="uq_ledger_entries_message_kind"),
    Index("ix_ledger_entries_account_id_id", "account_id", "id"),
)
