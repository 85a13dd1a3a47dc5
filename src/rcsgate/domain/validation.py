"""Small field rules shared by the CLI and the API.

Countries and currencies are checked against ISO data by ``domain.iso_codes`` (normalize_country,
normalize_currency); phone numbers by ``domain.phones.normalize_phone``.
"""

from __future__ import annotations

from rcsgate.domain.rcs_content import is_valid_sms_sender


def check_rcs_agent_name(value: str) -> str:
    if not 1 <= len(value) <= 40:
        raise ValueError("an RCS agent name has 1 to 40 characters")
    return value


def check_sms_sender(value: str) -> str:
    if not is_valid_sms_sender(value):
        raise ValueError("an SMS sender is 3-11 letters/digits or 3-15 digits")
    return value
