"""What the API shows of a message, independent of how it is stored."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


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


def shown_amount(*, status: str, price: int, charged: int) -> int:
    """The cost a message shows: what it was charged, or while it may still be delivered, what it will cost."""
    if charged:
        return charged
    return price if status in ("scheduled", "moderation", "accepted", "sending", "sent") else 0
