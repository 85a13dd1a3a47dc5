"""Account use cases: create, inspect, fund, configure. Each function owns its transaction."""

from __future__ import annotations

from decimal import Decimal

from rcsgate.clock import Clock
from rcsgate.domain.api_keys import Mode
from rcsgate.domain.errors import InvalidInput, NotFound
from rcsgate.domain.iso_codes import normalize_currency
from rcsgate.domain.money import MoneyError, to_units
from rcsgate.domain.records import Account
from rcsgate.store import accounts as store
from rcsgate.store.db import Database
from rcsgate.webhooks.signing import new_webhook_secret
from rcsgate.webhooks.url_policy import CallbackUrlError, check_callback_url

MAX_CALLBACK_URL = 100


def _units(field: str, amount: Decimal | str) -> int:
    try:
        return to_units(amount)
    except MoneyError as exc:
        raise InvalidInput.field(field, str(exc)) from exc


async def create_account(
    db: Database,
    clock: Clock,
    *,
    name: str,
    currency: str = "EUR",
    mode: Mode = "live",
    credit_limit: Decimal | str = "0",
    timezone: str = "UTC",
) -> Account:
    if not 1 <= len(name) <= 100:
        raise InvalidInput.field("name", "The name must have 1 to 100 characters.")
    try:
        currency = normalize_currency(currency)
    except ValueError as exc:
        raise InvalidInput.field("currency", str(exc)) from exc
    credit = _units("credit_limit", credit_limit)
    if credit < 0:
        raise InvalidInput.field("credit_limit", "The credit limit cannot be negative.")
    async with db.write() as conn:
        account_id = await store.insert_account(
            conn,
            name=name,
            currency=currency,
            mode=mode,
            credit_limit=credit,
            timezone=timezone,
            webhook_secret=new_webhook_secret(),
            created_at=clock.now(),
        )
        account = await store.get_account(conn, account_id)
    assert account is not None
    return account


async def get_account(db: Database, account_id: int) -> Account:
    async with db.read() as conn:
        account = await store.get_account(conn, account_id)
    if account is None:
        raise NotFound(f"Account {account_id} was not found.")
    return account


async def list_accounts(db: Database) -> list[Account]:
    async with db.read() as conn:
        return await store.list_accounts(conn)


async def topup(
    db: Database, clock: Clock, *, account_id: int, amount: Decimal | str, note: str | None = None
) -> Account:
    """Add funds (a negative amount is an adjustment, e.g. a refund taken back)."""
    units = _units("amount", amount)
    if units == 0:
        raise InvalidInput.field("amount", "The amount must not be zero.")
    async with db.write() as conn:
        if await store.get_account(conn, account_id, for_update=True) is None:
            raise NotFound(f"Account {account_id} was not found.")
        await store.add_to_balance(
            conn,
            account_id=account_id,
            amount_units=units,
            kind="topup" if units > 0 else "adjustment",
            note=note,
            now=clock.now(),
        )
        account = await store.get_account(conn, account_id)
    assert account is not None
    return account


async def set_credit_limit(db: Database, *, account_id: int, credit_limit: Decimal | str) -> Account:
    units = _units("credit_limit", credit_limit)
    if units < 0:
        raise InvalidInput.field("credit_limit", "The credit limit cannot be negative.")
    async with db.write() as conn:
        if not await store.update_account(conn, account_id, credit_limit=units):
            raise NotFound(f"Account {account_id} was not found.")
        account = await store.get_account(conn, account_id)
    assert account is not None
    return account


def check_callback_url_shape(url: str, *, allow_private: bool = True) -> None:
    """The account callback URL's rules: at most 100 characters, http(s), and the webhook URL policy
    (webhooks.url_policy: no link-local or cloud metadata host ever; with ``allow_private`` false, no
    loopback, private or other non-public IP literal in any spelling, and no local name). Host names
    are not resolved here: delivery checks every address they resolve to."""
    if len(url) > MAX_CALLBACK_URL:
        raise InvalidInput.field(
            "callback_url", f"The callback url may not be greater than {MAX_CALLBACK_URL} characters."
        )
    if not (url.startswith("http://") or url.startswith("https://")) or len(url.split("://", 1)[1]) == 0:
        raise InvalidInput.field("callback_url", "The callback url must be an http or https URL.")
    try:
        check_callback_url(url, allow_private=allow_private)
    except CallbackUrlError as exc:
        raise InvalidInput.field(
            "callback_url", f"The {exc}.".replace("callback URL", "callback url", 1)
        ) from None


async def set_callback_url(
    db: Database, *, account_id: int, url: str | None, allow_private: bool = True
) -> Account:
    """Set (or with None clear) the account's RCS callback URL. ``allow_private`` is the deployment's
    RCSGATE_WEBHOOKS_ALLOW_PRIVATE: the CLI passes it; link-local and metadata hosts are refused
    whatever it says."""
    if url:
        check_callback_url_shape(url, allow_private=allow_private)
    async with db.write() as conn:
        if not await store.update_account(conn, account_id, rcs_callback_url=url or None):
            raise NotFound(f"Account {account_id} was not found.")
        account = await store.get_account(conn, account_id)
    assert account is not None
    return account


async def webhook_secret(db: Database, *, account_id: int) -> str:
    async with db.read() as conn:
        secret = await store.get_webhook_secret(conn, account_id)
    if secret is None:
        raise NotFound(f"Account {account_id} was not found.")
    return secret


async def rotate_webhook_secret(db: Database, *, account_id: int) -> str:
    secret = new_webhook_secret()
    async with db.write() as conn:
        if not await store.update_account(conn, account_id, webhook_secret=secret):
            raise NotFound(f"Account {account_id} was not found.")
    return secret
