"""An account's webhook deliveries: the log, redelivering one, and sending a test webhook.

The outbox sender (webhooks/sender.py) delivers and retries on its own schedule; what is here is
what a person asks for by hand, answered at once:

- **redeliver** posts a settled delivery (delivered, or failed after its retries) again, with the
  same body and ``webhook-id`` (so a receiver can tell a repeat) and a fresh signature, and records
  the attempt on the delivery. It goes to the URL the message named, else to the account's callback
  URL as it is now (a fixed URL is the usual reason to redeliver). A pending delivery is left to the
  sender, which is still retrying it.
- **send_test** posts a sample status callback (message id 0, reference ``rcsgate-test``) to the
  account's callback URL, signed with the account's secret; it is not stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound, Rejected
from rcsgate.domain.webhook_payloads import encode, status_payload
from rcsgate.store import accounts as account_store
from rcsgate.store import webhook_log as store
from rcsgate.store.db import Database
from rcsgate.webhooks.http_delivery import DeliveryResult, make_client, post_webhook
from rcsgate.webhooks.signing import signed_headers

STATUSES = ("pending", "delivered", "failed")
TEST_REFERENCE = "rcsgate-test"
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    message_id: int | None
    kind: str
    url: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    webhook_id: str
    body: str

    @property
    def redeliverable(self) -> bool:
        return self.status in store.SETTLED


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one hand-made post gave."""

    url: str
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: float


def delivery_view(row: Any) -> DeliveryView:
    return DeliveryView(
        id=int(row.id),
        message_id=row.message_id,
        kind=row.kind,
        url=row.url,
        status=row.status,
        attempts=int(row.attempts),
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        next_attempt_at=row.next_attempt_at,
        webhook_id=row.webhook_id,
        body=row.body,
    )


async def list_deliveries(
    db: Database,
    *,
    account_id: int,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 25,
) -> tuple[list[DeliveryView], int | None]:
    """A page of the account's deliveries, newest first, and the ``before_id`` of the next page."""
    if status is not None and status not in STATUSES:
        raise InvalidInput.field("status", f"The status must be one of {', '.join(STATUSES)}.")
    async with db.read() as conn:
        rows = await store.page(
            conn, account_id=account_id, status=status, before_id=before_id, limit=limit + 1
        )
    views = [delivery_view(r) for r in rows[:limit]]
    return views, (views[-1].id if len(rows) > limit else None)


async def get_delivery(db: Database, *, account_id: int, delivery_id: int) -> DeliveryView:
    async with db.read() as conn:
        row = await store.get(conn, account_id=account_id, delivery_id=delivery_id)
    if row is None:
        raise NotFound("Webhook delivery was not found.")
    return delivery_view(row)


async def _post(
    url: str, body: str, *, secret: str, webhook_id: str, now: datetime, allow_private: bool
) -> Attempt:
    data = body.encode()
    headers = signed_headers(secret=secret, webhook_id=webhook_id, timestamp=now, body=data)
    client = make_client()
    try:
        result: DeliveryResult = await post_webhook(
            client,
            url=url,
            body=data,
            headers=headers,
            timeout_s=TIMEOUT_SECONDS,
            allow_private=allow_private,
        )
    finally:
        await client.close()
    return Attempt(
        url=url,
        delivered=result.outcome == "delivered",
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
    )


async def redeliver(
    db: Database, clock: Clock, *, account_id: int, delivery_id: int, allow_private: bool
) -> tuple[DeliveryView, Attempt]:
    async with db.read() as conn:
        row = await store.get(conn, account_id=account_id, delivery_id=delivery_id)
        if row is None:
            raise NotFound("Webhook delivery was not found.")
        account = await account_store.get_account(conn, account_id)
        secret = await account_store.get_webhook_secret(conn, account_id)
        own_url = await store.message_callback_url(conn, row.message_id) if row.message_id else None
    assert account is not None and secret is not None
    if row.status not in store.SETTLED:
        raise Rejected("This delivery is still pending: it is retried automatically.")
    url = own_url or account.rcs_callback_url or row.url
    attempt = await _post(
        url, row.body, secret=secret, webhook_id=row.webhook_id, now=clock.now(), allow_private=allow_private
    )
    async with db.write() as conn:
        await store.record_redelivery(
            conn,
            delivery_id=delivery_id,
            url=url,
            delivered=attempt.delivered,
            status_code=attempt.status_code,
            error=attempt.error,
            now=clock.now(),
        )
        updated = await store.get(conn, account_id=account_id, delivery_id=delivery_id)
    assert updated is not None
    return delivery_view(updated), attempt


def sample_body(*, currency: str, timezone: str, now: datetime) -> str:
    return encode(
        status_payload(
            message_id=0,
            phone="380000000000",
            reference=TEST_REFERENCE,
            status="delivered",
            created_at=now,
            sent_at=now,
            delivered_at=now,
            charged_units=0,
            currency=currency,
            fail_reason=None,
            tz=timezone,
        )
    )


async def send_test(db: Database, clock: Clock, *, account_id: int, allow_private: bool) -> Attempt:
    async with db.read() as conn:
        account = await account_store.get_account(conn, account_id)
        secret = await account_store.get_webhook_secret(conn, account_id)
    if account is None or secret is None:
        raise NotFound(f"Account {account_id} was not found.")
    if not account.rcs_callback_url:
        raise Rejected("Set a callback URL first: the test webhook goes there.")
    now = clock.now()
    body = sample_body(currency=account.currency, timezone=account.timezone, now=now)
    return await _post(
        account.rcs_callback_url,
        body,
        secret=secret,
        webhook_id=f"test_{uuid.uuid4().hex}",
        now=now,
        allow_private=allow_private,
    )
