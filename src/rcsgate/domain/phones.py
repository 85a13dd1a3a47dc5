"""Recipient countries, from the number itself (libphonenumber's metadata)."""

from __future__ import annotations

import phonenumbers


def country_of(phone: str) -> str | None:
    """ISO country of a digits-only international number, or None when no country claims it."""
    try:
        parsed = phonenumbers.parse("+" + phone, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    return region if region and region != "001" else None
