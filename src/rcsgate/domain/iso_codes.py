"""The ISO codes an operator types: countries (ISO 3166-1 alpha-2) and currencies (ISO 4217).

Both are checked against maintained data, not a hand-typed list:

- Countries are the regions libphonenumber knows: the same data that decides which country a
  recipient's number belongs to (``domain/phones.py``), so a country accepted here is one a phone
  number can have. That is ISO 3166-1 alpha-2 as used for telephony: it includes XK (Kosovo) and
  AC/TA (Ascension, Tristan da Cunha), which have calling codes of their own, and leaves out
  territories that no number belongs to (AQ, BV, HM, ...).
- Currencies are the current ISO 4217 table (package ``iso4217``, the maintenance agency's list)
  less what an account cannot hold as money: units without minor units (precious metals, XDR, the
  testing code XTS, "no currency" XXX) and fund codes (USN, CHE, ...).
"""

from __future__ import annotations

from functools import cache

import phonenumbers
from iso4217 import Currency, raw_xml

__all__ = ["countries", "currencies", "normalize_country", "normalize_currency"]


@cache
def countries() -> frozenset[str]:
    return frozenset(region for region in phonenumbers.SUPPORTED_REGIONS if region.isalpha())


@cache
def currencies() -> frozenset[str]:
    funds = {
        entry.findtext("Ccy")
        for entry in raw_xml.iter("CcyNtry")
        if (name := entry.find("CcyNm")) is not None and name.get("IsFund") == "true"
    }
    return frozenset(
        str(currency.value)
        for currency in Currency
        if currency.exponent is not None and currency.value not in funds
    )


def normalize_country(value: str) -> str:
    """``value`` as an upper-case ISO 3166-1 alpha-2 code; ValueError if it is not one."""
    country = value.strip().upper()
    if country not in countries():
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code like UA, got {value!r}")
    return country


def normalize_currency(value: str) -> str:
    """``value`` as an upper-case ISO 4217 currency code; ValueError if it is not one."""
    currency = value.strip().upper()
    if currency not in currencies():
        raise ValueError(f"currency must be an ISO 4217 code like EUR, got {value!r}")
    return currency
