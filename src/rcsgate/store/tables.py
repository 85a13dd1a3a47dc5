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
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
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

# Upstreams configured by the operator (`rcsgate connectors …`): Google RBM now, SMPP later. `config`
# is JSON of the settings that may be shown; `secrets` JSON of what must never be printed or logged
# (service-account keys, client tokens, passwords): `connectors show` prints their fingerprints.
connectors = Table(
    "connectors",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(20), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
    Column("config", Text, nullable=False),
    Column("secrets", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("kind IN ('rbm', 'smpp')", name="kind"),
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
    # Messages per second across all workers; null is unlimited. A token bucket holding one second's worth.
    Column("send_rate", Integer, nullable=True),
    Column("rate_tokens", Float, nullable=False, server_default="0"),
    Column("rate_updated_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # The connector its messages go through; null is the built-in simulator.
    Column("connector_id", BigInteger, ForeignKey("connectors.id"), nullable=True),
    CheckConstraint("status IN ('active', 'blocked', 'registering')", name="status"),
    CheckConstraint("send_rate IS NULL OR send_rate > 0", name="send_rate"),
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
    Column("connector_id", BigInteger, ForeignKey("connectors.id"), nullable=True),
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

# ---------------------------------------------------------------- messages

contacts = Table(
    "contacts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("phone", String(15), nullable=False),
    # Test-mode accounts may message only verified contacts.
    Column("verified", Boolean, nullable=False, server_default="0"),
    # Custom field values as JSON: [{"id": <field id>, "value": "..."}].
    Column("fields", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("account_id", "phone", name="uq_contacts_account_phone"),
)

contact_groups = Table(
    "contact_groups",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("description", String(255), nullable=True),
    Column("is_default", Boolean, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_contact_groups_account_id", "account_id"),
)

contact_group_members = Table(
    "contact_group_members",
    metadata,
    Column("group_id", BigInteger, ForeignKey("contact_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_contact_group_members_contact_id", "contact_id"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("sender", String(40), nullable=False),
    Column("agent_id", BigInteger, nullable=False),
    Column("message_type", String(8), nullable=False, server_default="rcs"),
    Column("source", String(8), nullable=False, server_default="rest"),
    Column("status", String(12), nullable=False),
    # Why a campaign is paused (funds), for operators.
    Column("status_reason", String(50), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("tariff_id", BigInteger, nullable=True),
    Column("calculated_price", BigInteger, nullable=False, server_default="0"),
    Column("total_phones", Integer, nullable=False, server_default="0"),
    Column("has_sms_alternative", Boolean, nullable=False, server_default="0"),
    Column("start_at", UtcDateTime, nullable=True),
    Column("real_start_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint(
        "status IN ('creation', 'scheduled', 'sending', 'done', 'paused', 'stopped', 'spam', 'moderation')",
        name="status",
    ),
    Index("ix_campaigns_account_id_id", "account_id", "id"),
    Index("ix_campaigns_status", "status"),
)

stop_list = Table(
    "stop_list",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("type", String(10), primary_key=True),
    Column("phone", String(15), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("type IN ('sms', 'rcs', 'viber', 'whatsapp')", name="type"),
)

# The processes that claim work (dispatchers, webhook senders), each beating its row every second or
# so while it lives. A holder whose beat is older than the dead threshold is dead: the sweep leader
# frees its claims and deletes its row (services/dispatching.reclaim_dead). No foreign keys point
# here: claims name their holder in an unindexed column, and a deleted holder's claims are free.
claim_holders = Table(
    "claim_holders",
    metadata,
    Column("id", BigId, primary_key=True),
    # host:pid and the command, for operators reading the table.
    Column("label", String(200), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("beat_at", UtcDateTime, nullable=False),
    # Ids never come back (SQLite would otherwise reuse a deleted highest id): a claim left with a
    # dead holder's id must not pass for a new holder's.
    sqlite_autoincrement=True,
)

# Conditions of partial indexes on messages, spelled the same in the queries that use them.
EXPIRING_CONDITION = "status IN ('accepted', 'sent')"
# On PostgreSQL also `expires_at IS NOT NULL` (always true), which makes the index useless to a query
# without a condition on expires_at: a claim's `status = 'accepted'` implies the plain condition, and
# a PostgreSQL without statistics then read the whole index into a bitmap for every claim (45 ms a
# claim). SQLite infers neither (and drops the IS NOT NULL of a NOT NULL column from its queries).
EXPIRING_CONDITION_PG = f"{EXPIRING_CONDITION} AND expires_at IS NOT NULL"
SENDING_CONDITION = "status = 'sending'"

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("campaign_id", BigInteger, nullable=True),
    # An SMS fallback points at the RCS message it replaces.
    Column("parent_id", BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=True),
    Column("type", String(4), nullable=False),
    Column("source", String(8), nullable=False, server_default="rest"),
    Column("reference_id", String(32), nullable=True),
    Column("phone", String(15), nullable=False),
    Column("country", String(2), nullable=True),
    Column("sender", String(40), nullable=False),
    Column("agent_id", BigInteger, nullable=True),
    Column("kind", String(16), nullable=False),
    # RCS: the options as sent upstream (suggestions carry "type"); SMS: {"text": ...}.
    Column("content", Text, nullable=False),
    # RCS only: the alternative SMS channel, applied when the RCS message ends undelivered or expired.
    Column("sms_alternative", Text, nullable=True),
    Column("parts", Integer, nullable=True),
    Column("status", String(16), nullable=False),
    Column("fail_reason", String(32), nullable=True),
    Column("validity_seconds", Integer, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("callback_url", String(100), nullable=True),
    Column("check_stop_list", Boolean, nullable=False, server_default="1"),
    Column("tariff_id", BigInteger, nullable=True),
    # What delivery costs (units), fixed at acceptance; and what is reserved for it right now.
    Column("price", BigInteger, nullable=False, server_default="0"),
    Column("reserved", BigInteger, nullable=False, server_default="0"),
    Column("charged", BigInteger, nullable=False, server_default="0"),
    # Single sends go before campaign traffic: lower runs first.
    Column("priority", Integer, nullable=False, server_default="0"),
    # When a worker must next act (send, retry, expire); null when nothing is pending.
    Column("due_at", UtcDateTime, nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    # The claim_holders row of the process that claimed the message (for sending or for a revoke):
    # the reaper frees the claims of a holder that stopped beating. Not indexed: the claiming UPDATE
    # writes no index entry more (nor would a move that only clears it); the reaper finds the few
    # claimed rows through the status index.
    Column("holder_id", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("upstream", String(20), nullable=True),
    Column("upstream_id", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("read_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    CheckConstraint("type IN ('rcs', 'sms')", name="type"),
    CheckConstraint("reserved >= 0", name="reserved"),
    Index("ix_messages_account_id_id", "account_id", "id"),
    Index("ix_messages_account_id_created_at", "account_id", "created_at"),
    # Partial: most messages have no reference (campaigns) and no parent (all but SMS fallbacks);
    # every insert and every status update (none is HOT) would add an entry for them otherwise. Each
    # query of these columns compares them with a value, which implies the index's condition.
    Index(
        "ix_messages_account_id_reference_id",
        "account_id",
        "reference_id",
        sqlite_where=text("reference_id IS NOT NULL"),
        postgresql_where=text("reference_id IS NOT NULL"),
    ),
    Index("ix_messages_account_id_campaign_id", "account_id", "campaign_id"),
    # Campaign statistics are GROUP BYs over this index alone: exact at every moment, and cheap.
    Index("ix_messages_campaign_id_type_status", "campaign_id", "type", "status", "fail_reason"),
    Index("ix_messages_account_id_phone", "account_id", "phone"),
    # With id: a campaign's messages share one due_at, and a claim (ORDER BY due_at, id) read and
    # sorted the whole campaign for each batch of 200 (~40 ms at 40,000 waiting, PostgreSQL).
    Index("ix_messages_status_due_at_id", "status", "due_at", "id"),
    # The sweeps' indexes, over the few rows each sweep can act on: validity ends of accepted and
    # sent messages (a sent one may wait hours for its report, and the status index alone made the
    # expiry sweep read every sent row, ~50 ms a sweep at 60,000 on PostgreSQL), and the leases of
    # claims. Queries spell their conditions as these literals (store/pipeline.EXPIRING, SENDING).
    # SQLite's planner takes them once it has statistics (ANALYZE); without, it keeps to the status
    # index, as before.
    Index(
        "ix_messages_expiry",
        "expires_at",
        sqlite_where=text(EXPIRING_CONDITION),
        postgresql_where=text(EXPIRING_CONDITION_PG),
    ),
    Index(
        "ix_messages_sending_lease",
        "lease_until",
        sqlite_where=text(SENDING_CONDITION),
        postgresql_where=text(SENDING_CONDITION),
    ),
    Index(
        "ix_messages_parent_id",
        "parent_id",
        sqlite_where=text("parent_id IS NOT NULL"),
        postgresql_where=text("parent_id IS NOT NULL"),
    ),
    # A reference_id names one request's message; its SMS fallback shares it.
    Index(
        "uq_messages_account_reference",
        "account_id",
        "reference_id",
        unique=True,
        sqlite_where=text("reference_id IS NOT NULL AND parent_id IS NULL"),
        postgresql_where=text("reference_id IS NOT NULL AND parent_id IS NULL"),
    ),
)

message_events = Table(
    "message_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("message_id", BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("from_status", String(16), nullable=True),
    Column("status", String(16), nullable=False),
    Column("detail", String(200), nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_message_events_message_id", "message_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("message_id", BigInteger, nullable=True),
    Column("kind", String(8), nullable=False),
    Column("url", String(2048), nullable=False),
    # The exact bytes that are signed and sent, so every retry is identical.
    Column("body", Text, nullable=False),
    # Unique by construction (128 random bits), and never looked up: no unique index, whose random
    # keys made it the outbox's largest index and its costliest to write (migration 0011).
    Column("webhook_id", String(64), nullable=False),
    Column("status", String(12), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    # The claim_holders row of the sender that claimed the delivery (null once it is recorded), as
    # on messages: unindexed.
    Column("holder_id", BigInteger, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    CheckConstraint("kind IN ('status', 'click', 'inbound')", name="kind"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    # Only pending rows (migration 0006): the sender's lookups read nothing else, and these stay as
    # small as the backlog. Queries must spell the condition as this literal for the planners to
    # use them (store/webhooks.PENDING).
    Index(
        "ix_webhook_deliveries_pending_due",
        "next_attempt_at",
        "id",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index(
        "ix_webhook_deliveries_pending_message",
        "message_id",
        "id",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    # A message's webhooks whatever their status (its page in the console; the API's webhook log).
    Index("ix_webhook_deliveries_message_id", "message_id"),
)

# What upstreams pushed to us, each under the upstream's own id (Google's eventId, a user message's
# id), kept once: a redelivered event finds its key taken and changes nothing. User replies are
# read from here (kind text, location or file) and posted as `inbound` webhooks. An event is
# answered once stored and applied after: see upstream_events_pending.
upstream_events = Table(
    "upstream_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("connector_id", BigInteger, ForeignKey("connectors.id", ondelete="CASCADE"), nullable=False),
    Column("event_key", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("account_id", BigInteger, nullable=True),
    Column("message_id", BigInteger, nullable=True),
    Column("phone", String(15), nullable=True),
    Column("payload", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    UniqueConstraint("connector_id", "event_key", name="uq_upstream_events_connector_key"),
    Index("ix_upstream_events_account_id_id", "account_id", "id"),
)

# The upstream events stored and not applied yet: a row inserted with the event, deleted by the
# transaction that applies it (the delete is the compare-and-set: only one applier gets the row
# back). A narrow table of its own rather than a column of upstream_events: marking a wide row
# applied wrote a new version of it and of its three indexes (docs/PERFORMANCE.md, RBM). What a
# crash left here is applied by the workers' left-over loop. No foreign key (its check would lock
# the event's row); a connector's removal deletes its events' rows here first.
upstream_events_pending = Table(
    "upstream_events_pending",
    metadata,
    Column("event_id", BigInteger, primary_key=True, autoincrement=False),
    Column("received_at", UtcDateTime, nullable=False),
)

# Each SMS part an SMSC accepted (its submit_sm_resp id, normalised), and each delivery receipt.
# A receipt that overtakes its submit's answer is kept here with no message yet (message_id null)
# and joined when the answer is recorded. Unique per connector: receipts are matched on whichever
# bind they arrive.
smpp_parts = Table(
    "smpp_parts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("connector_id", BigInteger, ForeignKey("connectors.id", ondelete="CASCADE"), nullable=False),
    Column("smsc_id", String(64), nullable=False),
    Column("message_id", BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=True),
    Column("part_no", Integer, nullable=True),
    Column("parts", Integer, nullable=True),
    # submitted (waiting for its receipt), delivered, undelivered; or enroute for a non-final receipt.
    Column("state", String(12), nullable=False),
    Column("stat", String(16), nullable=True),
    Column("err", String(16), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("state IN ('submitted', 'enroute', 'delivered', 'undelivered')", name="state"),
    UniqueConstraint("connector_id", "smsc_id", name="uq_smpp_parts_connector_smsc_id"),
    Index("ix_smpp_parts_message_id", "message_id"),
)

# Routes with failover: messages of a channel to numbers starting with ``prefix`` ('' for all) go to
# the first of ``connectors`` (a JSON list of names) whose link is up.
routes = Table(
    "routes",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("channel", String(8), nullable=False),
    Column("prefix", String(15), nullable=False, server_default=""),
    Column("connectors", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("channel IN ('sms')", name="channel"),
    UniqueConstraint("channel", "prefix", name="uq_routes_channel_prefix"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("body_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Recently accepted request bodies, to refuse an accidental resend within the duplicate window.
request_fingerprints = Table(
    "request_fingerprints",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("body_hash", String(64), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# Request budget per account and fixed time window, shared by every API process on PostgreSQL
# (processes take it in small chunks; see api/rate_limit.py).
rate_limit_windows = Table(
    "rate_limit_windows",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),  # Unix seconds
    Column("used", Integer, nullable=False),
)

# ---------------------------------------------------------------- message counts (migration 0005)

# Sorting messages by delivery time walks this index. The id completes the order, so PostgreSQL
# need not sort a large group of equal keys (every undelivered message has a NULL delivered_at).
Index("ix_messages_account_id_delivered_at_id", messages.c.account_id, messages.c.delivered_at, messages.c.id)

# How many messages each account has per UTC day of created_at, kept exact by triggers on
# `messages` (migration 0005), so GET /api/messages can count a 92-day period from ~92 rows plus
# the two partial days at its ends instead of from a million index entries.
#
# A day's count is the sum over its slots. SQLite (one writer at a time) keeps one row per day in
# slot 0. On PostgreSQL each INSERT or DELETE statement appends a row per account and day it touched
# (an insert's slot is the largest message id of its rows; other changes take negative slots from
# message_day_counts_slot_seq), and transactions fold a day's rows into slot 0 now and then, at
# commit: concurrent writers never wait on a shared counter row, so no lock order is imposed on
# them. min_id/max_id bound the ids of the day's messages (never narrower than the truth; NULL in a
# removal), so a page ordered by id can start where the period's messages start.
# No foreign key: deleting an account cascades to its messages, whose triggers write here.
message_day_counts = Table(
    "message_day_counts",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("day", Date, nullable=False),
    Column("slot", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("min_id", BigInteger, nullable=True),
    Column("max_id", BigInteger, nullable=True),
    # Sums are read from the key alone (an index-only scan): on PostgreSQL the folded-away rows
    # leave dead tuples behind until vacuum, which a scan of the table would have to step over.
    PrimaryKeyConstraint("account_id", "day", "slot", postgresql_include=["count", "min_id", "max_id"]),
)


# The same counts per UTC hour (hours since the epoch), kept by their own triggers (migration 0014)
# the same way: a period's partial days are read as whole hours from here, and only the partial
# hours at its ends from the (account_id, created_at) index (store/message_counts.py).
message_hour_counts = Table(
    "message_hour_counts",
    metadata,
    Column("account_id", BigInteger, nullable=False),
    Column("hour", BigInteger, nullable=False),
    Column("slot", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("min_id", BigInteger, nullable=True),
    Column("max_id", BigInteger, nullable=True),
    PrimaryKeyConstraint("account_id", "hour", "slot", postgresql_include=["count", "min_id", "max_id"]),
)

# ---------------------------------------------------------------- web console (migration 0009)

# People who sign in to the web console (/console/), each belonging to one account and seeing only
# it. Passwords are stored as argon2id hashes (services/console_users.py); emails in lower case.
console_users = Table(
    "console_users",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("password_changed_at", UtcDateTime, nullable=False),
    # A disabled user cannot sign in, and their sessions are ended.
    Column("disabled_at", UtcDateTime, nullable=True),
    Index("ix_console_users_account_id", "account_id"),
)

# Signed-in browsers: the cookie carries a random token, this table its SHA-256 (a copy of the table
# lets nobody in). Each session has its own CSRF token, which every form and htmx request sends back.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("console_users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_console_sessions_user_id", "user_id"),
    Index("ix_console_sessions_expires_at", "expires_at"),
)

# Failed sign-ins per email and per client address: past a few in a row, each further attempt must
# wait longer (services/console_users.py), shared by every API process.
console_sign_in_failures = Table(
    "console_sign_in_failures",
    metadata,
    Column("subject", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", UtcDateTime, nullable=False),
    Column("blocked_until", UtcDateTime, nullable=True),
)
