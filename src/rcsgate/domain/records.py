"""Plain records of the account-side objects, as services hand them to the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rcsgate.domain.api_keys import Mode
from rcsgate.domain.money import from_units


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    currency: str
    balance_units: int
    credit_limit_units: int
    reserved_units: int
    mode: Mode
    rcs_callback_url: str | None
    timezone: str
    created_at: datetime

    @property
    def balance(self) -> Decimal:
        return from_units(self.balance_units)

    @property
    def credit_limit(self) -> Decimal:
        return from_units(self.credit_limit_units)

    @property
    def reserved(self) -> Decimal:
        return from_units(self.reserved_units)

    @property
    def available_units(self) -> int:
        return self.balance_units + self.credit_limit_units - self.reserved_units


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: int
    account_id: int
    prefix: str
    mode: Mode
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from a bearer token or an X-API-KEY header on every request."""

    account_id: int
    key_id: int
    mode: Mode


@dataclass(frozen=True, slots=True)
class RcsAgent:
    id: int
    account_id: int
    name: str
    country: str
    status: str
    is_test: bool
    created_at: datetime
    send_rate: int | None = None
    # The connector its messages go through (an RBM one); None is the built-in simulator.
    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class ConnectorRecord:
    """A configured upstream (`rcsgate connectors …`). ``secrets`` never leave the process."""

    id: int
    name: str
    kind: str  # rbm, smpp
    config: dict[str, Any]
    secrets: dict[str, Any] = field(repr=False)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SmsSender:
    id: int
    account_id: int
    name: str
    country: str | None
    status: str
    is_default: bool
    created_at: datetime
    # The SMPP connector its SMS go through; None: by route, else the built-in simulator.
    connector_id: int | None = None


@dataclass(frozen=True, slots=True)
class Tariff:
    id: int
    code: int
    name: str
    is_active: bool
    is_default: bool


@dataclass(frozen=True, slots=True)
class Price:
    tariff_code: int
    channel: str
    kind: str
    country: str
    price_units: int

    @property
    def price(self) -> Decimal:
        return from_units(self.price_units)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    account_id: int
    message_id: int | None
    kind: str
    amount_units: int
    balance_after_units: int
    note: str | None
    created_at: datetime
