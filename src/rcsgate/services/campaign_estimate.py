"""What a campaign would cost, before it is sent (the console's review): the request goes through the
checks ``create_campaign`` applies (``campaigns.check_request``), and its recipients are judged by the
same rule (``domain.campaign_acceptance``), so the estimate refuses and prices exactly what
acceptance would. Nothing is written."""

from __future__ import annotations

from dataclasses import dataclass

from rcsgate.clock import Clock
from rcsgate.domain.campaign_acceptance import CostEstimate, estimate_cost
from rcsgate.domain.errors import NotFound
from rcsgate.domain.rcs_content import RcsCampaignSend, RcsGroupsCampaignSend
from rcsgate.domain.records import Principal
from rcsgate.services import campaigns
from rcsgate.store import accounts as account_store
from rcsgate.store.db import Database


@dataclass(frozen=True, slots=True)
class CampaignEstimate:
    cost: CostEstimate
    available_units: int
    currency: str

    @property
    def covered(self) -> bool:
        """Whether the funds cover every accepted RCS message (the SMS fallbacks may not all be sent)."""
        return self.cost.rcs_units <= self.available_units


async def estimate_campaign(
    db: Database, clock: Clock, *, principal: Principal, send: RcsCampaignSend | RcsGroupsCampaignSend
) -> CampaignEstimate:
    """The campaign's cost against the account's available funds; InvalidInput or Rejected where
    ``create_campaign`` would refuse the request."""
    recipients = await campaigns.recipients_of(db, principal.account_id, send)
    async with db.read() as conn:
        account = await account_store.get_account(conn, principal.account_id)
        if account is None:
            raise NotFound("Account was not found.")
        accepted = await campaigns.check_request(
            conn, account, principal=principal, send=send, recipients=recipients, now=clock.now()
        )
    cost = estimate_cost(recipients.phones, recipients.countries, accepted.terms)
    return CampaignEstimate(cost=cost, available_units=account.available_units, currency=account.currency)
