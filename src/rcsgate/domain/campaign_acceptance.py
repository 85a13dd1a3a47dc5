"""Which of a campaign's recipients are accepted, and at what price.

``services.campaigns.create_campaign`` stores a message per recipient with this verdict, and the
console's cost estimate (``services.campaign_estimate``) sums the same verdicts before anything is
sent: one rule, so the estimate and the accepted campaign cannot disagree.

A refused recipient's message is stored ``failed`` at once with the reason, never sent and never
billed. The reasons are checked in the order of ``REFUSAL_REASONS``; a recipient gets the first.
No web or database imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Final

REFUSAL_REASONS: Final = ("invalid_number", "country", "stop_list", "not_verified", "no_price")


@dataclass(frozen=True, slots=True)
class AcceptanceTerms:
    """What every recipient of one campaign is judged by (read once, when the campaign is accepted)."""

    agent_country: str
    rcs_prices: Mapping[str, int]  # by country, for the content's kind
    # By country; None when the campaign has no SMS alternative (its price is then not needed).
    sms_prices: Mapping[str, int] | None
    sms_parts: int  # of the SMS alternative's text; 0 without one
    stop_listed: Set[str]  # empty when the request does not check the stop list
    verified: Set[str] | None  # test mode: the only numbers it may send to; None in live mode


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None = None  # one of REFUSAL_REASONS, or None: accepted
    price: int = 0  # the RCS message's price if delivered; 0 when refused
    sms_unit_price: int | None = None  # per part of the SMS alternative, when accepted with one


_REFUSED: Final = {reason: Verdict(reason) for reason in REFUSAL_REASONS}


def judge(phone: str, country: str | None, terms: AcceptanceTerms) -> Verdict:
    """The verdict on one recipient; ``country`` is ``domain.phones.country_of(phone)`` (the caller
    looks it up, off the event loop for thousands of numbers)."""
    if country is None:
        return _REFUSED["invalid_number"]  # no country claims it
    if country != terms.agent_country:
        return _REFUSED["country"]
    if phone in terms.stop_listed:
        return _REFUSED["stop_list"]
    if terms.verified is not None and phone not in terms.verified:
        return _REFUSED["not_verified"]
    price = terms.rcs_prices.get(country)
    if price is None:
        return _REFUSED["no_price"]
    if terms.sms_prices is None:
        return Verdict(price=price)
    # The fallback may be sent, so its price must be known up front: without it the recipient is
    # refused as a whole, as if the RCS price were missing.
    unit = terms.sms_prices.get(country)
    if unit is None:
        return _REFUSED["no_price"]
    return Verdict(price=price, sms_unit_price=unit)


@dataclass(frozen=True, slots=True)
class CountryCost:
    country: str
    recipients: int
    unit_units: int  # the RCS price of one message there


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """What a campaign costs if every accepted message is delivered, and the most its SMS fallbacks
    can add (each accepted recipient's fallback sent, every part billed)."""

    recipients: int
    sendable: int
    refused: dict[str, int]  # by reason, in REFUSAL_REASONS order
    countries: tuple[CountryCost, ...]  # of the accepted recipients, by country code
    rcs_units: int  # equals the accepted campaign's calculated price
    sms_parts: int
    sms_max_units: int

    @property
    def total_max_units(self) -> int:
        return self.rcs_units + self.sms_max_units


def estimate_cost(
    phones: Sequence[str], countries: Sequence[str | None], terms: AcceptanceTerms
) -> CostEstimate:
    """The verdicts on every recipient (``countries[i]`` is ``phones[i]``'s), summed."""
    refused: dict[str, int] = {}
    per_country: dict[str, list[int]] = {}  # country -> [recipients, unit price]
    rcs_units = sms_units = 0
    for phone, country in zip(phones, countries, strict=True):
        verdict = judge(phone, country, terms)
        if verdict.reason is not None:
            refused[verdict.reason] = refused.get(verdict.reason, 0) + 1
            continue
        assert country is not None
        per_country.setdefault(country, [0, verdict.price])[0] += 1
        rcs_units += verdict.price
        sms_units += (verdict.sms_unit_price or 0) * terms.sms_parts
    return CostEstimate(
        recipients=len(phones),
        sendable=len(phones) - sum(refused.values()),
        refused={r: refused[r] for r in REFUSAL_REASONS if r in refused},
        countries=tuple(CountryCost(c, n, unit) for c, (n, unit) in sorted(per_country.items())),
        rcs_units=rcs_units,
        sms_parts=terms.sms_parts,
        sms_max_units=sms_units,
    )
