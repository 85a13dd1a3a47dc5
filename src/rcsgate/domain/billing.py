"""What a message may cost, and how its reservation is settled. Amounts are integer 10^-7 units."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settlement:
    charge: int  # taken from the balance
    release: int  # returned to available funds
    transfer: int  # moved onto the SMS fallback's own reservation


def max_cost(*, rcs_price: int, sms_unit_price: int | None, sms_parts: int) -> int:
    """The most a single send can cost: the RCS price plus, if an SMS alternative is given, its parts."""
    return rcs_price + (sms_unit_price or 0) * sms_parts


def settle_delivered(*, reserved: int, price: int) -> Settlement:
    charge = min(price, reserved) if reserved else 0
    return Settlement(charge=charge, release=reserved - charge, transfer=0)


def settle_unsuccessful(*, reserved: int, fallback_cost: int | None) -> Settlement:
    """An RCS message that ends without delivery keeps nothing; the fallback's part moves to the SMS row."""
    transfer = min(fallback_cost, reserved) if fallback_cost else 0
    return Settlement(charge=0, release=reserved - transfer, transfer=transfer)
