"""Campaign statistics as the contract defines them, from counts of messages per (type, status)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rcsgate.domain.message_states import STATUSES

# statistics.sent counts these (the group page's list; note that it leaves out `read`).
SENT_STATUSES = ("delivered", "sent", "accepted", "sending", "undelivered", "failed", "expired", "unknown")
DELIVERED_STATUSES = ("delivered", "read")
NOT_RCS_USER = "not_rcs_user"


@dataclass(frozen=True, slots=True)
class ChannelCounts:
    """Messages of one channel per status; `not_rcs_user` (undelivered for lack of RCS) apart from `undelivered`."""

    by_status: Mapping[str, int]

    def count(self, status: str) -> int:
        return int(self.by_status.get(status, 0))

    @property
    def delivered(self) -> int:
        return sum(self.count(s) for s in DELIVERED_STATUSES)

    @property
    def sent(self) -> int:
        return sum(self.count(s) for s in SENT_STATUSES) + self.count(NOT_RCS_USER)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def detail(self) -> dict[str, int]:
        out: dict[str, int] = {status: self.count(status) for status in STATUSES}
        out["not_viber_user"] = 0
        out[NOT_RCS_USER] = self.count(NOT_RCS_USER)
        return out


def split_counts(rows: list[tuple[str, str, str | None, int]]) -> tuple[ChannelCounts, ChannelCounts]:
    """(RCS, SMS) counts from rows of (type, status, fail_reason, count)."""
    rcs: dict[str, int] = {}
    sms: dict[str, int] = {}
    for kind, status, reason, n in rows:
        bucket = rcs if kind == "rcs" else sms
        key = NOT_RCS_USER if kind == "rcs" and status == "undelivered" and reason == NOT_RCS_USER else status
        bucket[key] = bucket.get(key, 0) + int(n)
    return ChannelCounts(rcs), ChannelCounts(sms)
