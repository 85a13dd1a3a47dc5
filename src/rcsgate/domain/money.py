"""Money: Decimal in code, an integer count of 10^-7 units in storage."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

SCALE = 10**7
QUANTUM = Decimal("0.0000001")


class MoneyError(ValueError):
    pass


def to_units(amount: Decimal | str | int) -> int:
    """Convert an amount to 10^-7 units; refuses more precision than that rather than rounding silently."""
    try:
        value = Decimal(amount) if not isinstance(amount, Decimal) else amount
    except InvalidOperation as exc:
        raise MoneyError(f"not an amount: {amount!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"not an amount: {amount!r}")
    scaled = value * SCALE
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more than 7 decimal places")
    return int(scaled)


def from_units(units: int) -> Decimal:
    return (Decimal(units) / SCALE).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def format_units(units: int) -> str:
    """The contract's money string: always 7 decimal places."""
    return f"{from_units(units):.7f}"
