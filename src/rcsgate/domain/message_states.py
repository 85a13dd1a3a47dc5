"""The message state machine (DESIGN.md "Message life"): which status may follow which.

Every transition in the code base goes through ``can_move``; the store applies it as a
compare-and-set on the old status, so a late or repeated report can never move a
message backwards or apply twice.
"""

from __future__ import annotations

from typing import Final, Literal

Status = Literal[
    "scheduled",
    "moderation",
    "accepted",
    "sending",
    "sent",
    "delivered",
    "read",
    "expired",
    "undelivered",
    "failed",
    "unknown",
]

STATUSES: Final[tuple[Status, ...]] = (
    "scheduled",
    "moderation",
    "accepted",
    "sending",
    "sent",
    "delivered",
    "read",
    "expired",
    "undelivered",
    "failed",
    "unknown",
)

# No status leaves these.
FINAL: Final[frozenset[str]] = frozenset({"read", "expired", "undelivered", "failed", "unknown"})
# The message's money is settled once it reaches one of these (delivered: charged; the others: released).
SETTLED: Final[frozenset[str]] = FINAL | {"delivered"}

_NEXT: Final[dict[str, frozenset[str]]] = {
    "scheduled": frozenset({"accepted", "failed"}),
    "moderation": frozenset({"accepted", "failed"}),
    # delivered / undelivered: a report for a submit whose answer was lost (timeout, reset) while the
    # upstream took the message all the same; the message waits for its retry in `accepted`.
    # sent: such a report says the upstream had it; `sent` is recorded first, as for `sending`.
    "accepted": frozenset({"sending", "sent", "failed", "expired", "delivered", "undelivered"}),
    # "accepted" again: a transient upstream error, retried later.
    "sending": frozenset({"accepted", "sent", "delivered", "undelivered", "failed", "expired"}),
    "sent": frozenset({"delivered", "undelivered", "expired", "unknown"}),
    "delivered": frozenset({"read"}),
}

# Statuses a customer hears about by webhook: from `sent` on.
WEBHOOK_STATUSES: Final[frozenset[str]] = frozenset(
    {"sent", "delivered", "read", "undelivered", "expired", "failed"}
)


def can_move(old: str, new: str) -> bool:
    return new in _NEXT.get(old, frozenset())


def is_final(status: str) -> bool:
    return status in FINAL
