"""Money: Decimal in code, an integer count of 10^-7 units in storage.

One rule for every amount an operator or a caller hands in (top-ups, credit limits, prices): a plain
decimal (``12``, ``-0.5``, ``0.0000001``; no exponent, no NaN or Infinity, no digit separators), with
no more precision than 10^-7 (refused, never rounded) and below 10^11 in size, so that sums of
amounts stay far inside a 64-bit column. The arithmetic is exact: no Decimal context rounds on the way.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

SCALE = 10**7
PLACES = 7
QUANTUM = Decimal("0.0000001")
# Amounts are below 10^11 (10^18 units): a BIGINT holds 9.2 * 10^18.
MAX_DIGITS_BEFORE_POINT = 11

_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class MoneyError(ValueError):
    pass


def parse_amount(text: str) -> Decimal:
    """A plain decimal string as a Decimal (exact); MoneyError for anything else."""
    plain = text.strip()
    if not _PLAIN_DECIMAL.fullmatch(plain):
        raise MoneyError(f"not an amount: {text!r} (write a plain decimal such as 12.5)")
    return Decimal(plain)


def to_units(amount: Decimal | str | int) -> int:
    """Convert an amount to 10^-7 units; refuses more precision than that rather than rounding silently."""
    if isinstance(amount, str):
        value = parse_amount(amount)
    elif isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, int) and not isinstance(amount, bool):
        value = Decimal(amount)
    else:
        raise MoneyError(f"not an amount: {amount!r} (pass a Decimal or a plain decimal string)")
    if not value.is_finite():
        raise MoneyError(f"not an amount: {amount!r}")
    sign, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    coefficient = int("".join(map(str, digit_tuple)) or "0")
    if coefficient == 0:
        return 0
    if value.adjusted() >= MAX_DIGITS_BEFORE_POINT:
        raise MoneyError(f"{amount} is too large: amounts are below {10**MAX_DIGITS_BEFORE_POINT}")
    shift = exponent + PLACES
    units: int
    if shift >= 0:
        units = coefficient * 10**shift
    else:
        # (Capped: a divisor longer than the coefficient leaves it all as the remainder anyway.)
        units, rest = divmod(coefficient, 10 ** min(-shift, len(digit_tuple) + 1))
        if rest:
            raise MoneyError(f"{amount} has more than {PLACES} decimal places")
    return -units if sign else units


def from_units(units: int) -> Decimal:
    return (Decimal(units) / SCALE).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def format_units(units: int) -> str:
    """The contract's money string: always 7 decimal places."""
    return f"{from_units(units):.7f}"
