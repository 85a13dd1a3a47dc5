"""What the API shows of a message, independent of how it is stored."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final

# Why a message did not reach its recipient (messages.fail_reason), shown as `fail_reason` in
# GET /api/messages for a message in one of these statuses:
#   refused when accepted (status failed, never billed):
#     country         the number belongs to another country than the sender's RCS agent
#     invalid_number  the number belongs to no country
#     stop_list       the number is on the account's stop list (check_stop_list)
#     not_verified    test mode: the number is not a verified contact of the account
#     no_price        the tariff has no price for the number's country
#   later:
#     stopped              its campaign was stopped before it was sent (failed)
#     rejected             the upstream refused the message for good (failed)
#     agent_not_launched   the RBM agent is not launched and the number is not one of its testers (failed)
#     invalid_content      Google refused the message's content (failed)
#     not_rcs_user         the recipient cannot receive RCS (undelivered)
#     undelivered          the upstream reported it undelivered (undelivered)
#     <STAT> err:<err>     an SMSC's receipt said so, e.g. "UNDELIV err:001" (SMPP; undelivered)
#     ESME_<name>          the SMSC refused the SMS for good, e.g. "ESME_RINVDSTADR" (SMPP; failed)
#     validity             its validity ended before it was delivered (expired)
#     upstream_unavailable the upstream could not be reached before its validity ended (expired)
FAILURE_STATUSES: Final = frozenset({"failed", "undelivered", "expired"})


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    reference_id: str | None
    type: str
    phone: str
    status: str
    validity_seconds: int
    amount_units: int
    currency: str
    sender: str
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    timezone: str
    campaign_id: int | None = None
    country: str | None = None
    content: dict[str, Any] | None = None
    parts: int | None = None
    fallback_parts: int | None = None
    fallback_ids: tuple[int, ...] = field(default_factory=tuple)
    # Why it failed (FAILURE_STATUSES only; see the list above), None otherwise.
    fail_reason: str | None = None

    @property
    def validity_hours(self) -> int:
        # The wire field is whole hours (1-72); seconds round up so a short validity never shows as 0.
        return max(1, min(72, math.ceil(self.validity_seconds / 3600)))

    def to_json(self) -> str:
        # Field by field: dataclasses.asdict deep-copies every value, a cost paid once per accepted send.
        data = {f.name: getattr(self, f.name) for f in _FIELDS}
        for key in ("created_at", "sent_at", "delivered_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["fallback_ids"] = list(self.fallback_ids)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> MessageView:
        data = json.loads(text)
        for key in ("created_at", "sent_at", "delivered_at"):
            data[key] = datetime.fromisoformat(data[key]) if data[key] else None
        data["fallback_ids"] = tuple(data.get("fallback_ids") or ())
        return cls(**data)


_FIELDS = fields(MessageView)


def shown_fail_reason(*, status: str, fail_reason: str | None) -> str | None:
    """The reason a message shows: the stored one while it is failed, undelivered or expired."""
    return fail_reason if status in FAILURE_STATUSES else None


def shown_amount(*, status: str, price: int, charged: int) -> int:
    """The cost a message shows: what it was charged, or while it may still be delivered, what it will cost."""
    if charged:
        return charged
    return price if status in ("scheduled", "moderation", "accepted", "sending", "sent") else 0
