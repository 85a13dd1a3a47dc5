"""Phone numbers: the one rule every endpoint and the CLI apply, and a number's country
(libphonenumber's metadata)."""

from __future__ import annotations

import re
from typing import Final

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

PHONE_DIGITS_MIN: Final = 9
PHONE_DIGITS_MAX: Final = 15
# An international number: country code first, so never a leading 0 ("0661231231" is a national
# number, "00380661231231" one with the international call prefix still on it).
_PHONE_RE: Final = re.compile(rf"\+?([1-9][0-9]{{{PHONE_DIGITS_MIN - 1},{PHONE_DIGITS_MAX - 1}}})")
_PHONE_INT_MIN: Final = 10 ** (PHONE_DIGITS_MIN - 1)
_PHONE_INT_MAX: Final = 10**PHONE_DIGITS_MAX - 1
# For documents (OpenAPI patterns, help texts): what a phone given as a string looks like.
PHONE_PATTERN: Final = rf"^\+?[1-9][0-9]{{{PHONE_DIGITS_MIN - 1},{PHONE_DIGITS_MAX - 1}}}$"


def normalize_phone(value: object) -> str | None:
    """The digits-only form of a phone number, or None when ``value`` is not one.

    The one phone rule of the API (sends, campaigns, contacts, stop lists) and the CLI: 9-15 ASCII
    digits, country code first, so no leading 0. The sources disagree on the shape (the send pages
    say a string without a plus, the official client's contact models an integer), so both a string
    (with at most one leading "+") and a JSON integer are accepted; the result is always the digits.
    Nothing else is tidied away: spaces, dashes, a newline or a boolean make it no phone.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if _PHONE_INT_MIN <= value <= _PHONE_INT_MAX else None
    if isinstance(value, str):
        match = _PHONE_RE.fullmatch(value)
        return match[1] if match else None
    return None


# What the first three digits alone say: a region, None (no country), or _SHARED (parse the number).
# At most 1,000 entries (digit prefixes only); a dict lookup instead of up to three slices, int() and lookups per number.
_SHARED: Final = "shared"
_BY_PREFIX: dict[str, str | None] = {}


def _region_of_prefix(prefix: str) -> str | None:
    for length in (1, 2, 3):
        head = prefix[:length]
        regions = (
            COUNTRY_CODE_TO_REGION_CODE.get(int(head)) if len(head) == length and head.isdigit() else None
        )
        if regions:
            if len(regions) == 1:
                return regions[0] if regions[0] != "001" else None
            break
    return _SHARED


def country_of(phone: str) -> str | None:
    """ISO country of a digits-only international number, or None when no country claims it.

    Most calling codes belong to one region, which libphonenumber would answer without looking at
    the rest of the number; deciding those from the prefix alone is ~100x cheaper than a full parse,
    which matters for 5000-recipient campaigns. Shared codes (+1, +7, +44, ...) get the full parse.
    """
    prefix = phone[:3]
    if prefix in _BY_PREFIX:
        by_prefix = _BY_PREFIX[prefix]
    else:
        by_prefix = _region_of_prefix(prefix)
        if len(prefix) == 3 and prefix.isdigit() and prefix.isascii():
            _BY_PREFIX[prefix] = by_prefix
    if by_prefix != _SHARED:
        return by_prefix
    try:
        parsed = phonenumbers.parse("+" + phone, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    return region if region and region != "001" else None
