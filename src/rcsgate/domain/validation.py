"""Small field rules shared by the CLI and the API."""

from __future__ import annotations

import re

COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
SMS_SENDER_RE = re.compile(r"^(?:[A-Za-z0-9]{3,11}|[0-9]{3,15})$")


def normalize_country(value: str) -> str:
    country = value.strip().upper()
    if not COUNTRY_RE.match(country):
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code like UA, got {value!r}")
    return country


def normalize_currency(value: str) -> str:
    currency = value.strip().upper()
    if not CURRENCY_RE.match(currency):
        raise ValueError(f"currency must be an ISO 4217 code like EUR, got {value!r}")
    return currency


def check_rcs_agent_name(value: str) -> str:
    if not 1 <= len(value) <= 40:
        raise ValueError("an RCS agent name has 1 to 40 characters")
    return value


def check_sms_sender(value: str) -> str:
    if not SMS_SENDER_RE.match(value):
        raise ValueError("an SMS sender is 3-11 letters/digits or 3-15 digits")
    return value
