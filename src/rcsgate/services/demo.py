"""``rcsgate demo``: a ready-to-use account for trying the API, created once and reused.

The key's plain text is kept in ``var/demo_api_key`` (mode 0600) because keys are
stored hashed: it is the only way a second run can print a working key without
piling up new ones. The console user ``demo@example.com`` (``ensure_demo_user``) is
created once with a random password, which only that first run can show: only its
hash is stored.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from rcsgate.clock import Clock
from rcsgate.domain.api_keys import hash_api_key, looks_like_api_key
from rcsgate.services import accounts, auth, console_users, senders, tariffs
from rcsgate.store import accounts as account_store
from rcsgate.store import senders as sender_store
from rcsgate.store import tariffs as tariff_store
from rcsgate.store.db import Database

DEMO_ACCOUNT = "demo"
DEMO_AGENT = "demo_agent"
DEMO_SMS_SENDER = "DemoSMS"
DEMO_TARIFF_CODE = 1
DEMO_BALANCE = "100.0000000"
DEMO_USER = "demo@example.com"

# EUR per message (SMS: per part). Deliberately distinct so a bill shows which price applied.
DEMO_PRICES: dict[str, dict[str, str]] = {
    "UA": {"text": "0.0200000", "single_card": "0.0350000", "carousel": "0.0500000", "sms": "0.0250000"},
    "PL": {"text": "0.0300000", "single_card": "0.0450000", "carousel": "0.0600000", "sms": "0.0380000"},
    "DE": {"text": "0.0400000", "single_card": "0.0550000", "carousel": "0.0700000", "sms": "0.0750000"},
    "GB": {"text": "0.0350000", "single_card": "0.0500000", "carousel": "0.0650000", "sms": "0.0400000"},
    "US": {"text": "0.0100000", "single_card": "0.0200000", "carousel": "0.0300000", "sms": "0.0080000"},
}


@dataclass(frozen=True, slots=True)
class DemoSetup:
    account_id: int
    api_key: str
    agent: str
    sms_sender: str


async def ensure_demo(db: Database, clock: Clock, *, var_dir: Path) -> DemoSetup:
    async with db.read() as conn:
        existing = await account_store.find_accounts_by_name(conn, DEMO_ACCOUNT)
    if existing:
        account_id = existing[0].id
    else:
        account = await accounts.create_account(db, clock, name=DEMO_ACCOUNT, currency="EUR")
        account_id = account.id
        await accounts.topup(db, clock, account_id=account_id, amount=DEMO_BALANCE, note="demo balance")

    async with db.read() as conn:
        has_agent = await sender_store.get_agent_by_name(conn, account_id, DEMO_AGENT) is not None
        has_sender = await sender_store.get_sender_by_name(conn, account_id, DEMO_SMS_SENDER) is not None
        tariff = await tariff_store.get_tariff_by_code(conn, DEMO_TARIFF_CODE)
    if not has_agent:
        await senders.create_agent(
            db, clock, account_id=account_id, name=DEMO_AGENT, country="UA", status="active"
        )
    if not has_sender:
        await senders.create_sender(db, clock, account_id=account_id, name=DEMO_SMS_SENDER, is_default=True)
    if tariff is None:
        await tariffs.create_tariff(db, clock, code=DEMO_TARIFF_CODE, name="Default", is_default=True)
    for country, kinds in DEMO_PRICES.items():
        for kind, price in kinds.items():
            channel = "sms" if kind == "sms" else "rcs"
            await tariffs.set_price(
                db, code=DEMO_TARIFF_CODE, channel=channel, kind=kind, country=country, price=price
            )

    api_key = await _demo_key(db, clock, account_id=account_id, path=var_dir / "demo_api_key")
    return DemoSetup(account_id=account_id, api_key=api_key, agent=DEMO_AGENT, sms_sender=DEMO_SMS_SENDER)


@dataclass(frozen=True, slots=True)
class DemoUser:
    email: str
    password: str | None  # set only by the run that created the user


async def ensure_demo_user(db: Database, clock: Clock, *, account_id: int) -> DemoUser:
    """The demo account's console user, created (with a random password) unless it exists."""
    if await console_users.find_user(db, email=DEMO_USER) is not None:
        return DemoUser(email=DEMO_USER, password=None)
    password = console_users.new_password()
    await console_users.create_user(db, clock, account_id=account_id, email=DEMO_USER, password=password)
    return DemoUser(email=DEMO_USER, password=password)


def _read_key(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def _write_key(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")


async def _demo_key(db: Database, clock: Clock, *, account_id: int, path: Path) -> str:
    key = await asyncio.to_thread(_read_key, path)
    if key and looks_like_api_key(key):
        async with db.read() as conn:
            principal = await account_store.principal_by_hash(conn, hash_api_key(key))
        if principal is not None and principal.account_id == account_id:
            return key
    new = await auth.create_key(db, clock, account_id=account_id, mode="live", label="demo")
    await asyncio.to_thread(_write_key, path, new.key)
    return new.key
