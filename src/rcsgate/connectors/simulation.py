"""What the simulated upstream does with a message: its outcome, its answer and the reports it
schedules. Shared by the embedded simulator (connectors/simulator.py, reports handed to an
in-process sink) and the standalone simulator service (connectors/simulator_service.py, reports
pushed over HTTP), so both behave identically.

Outcomes depend only on the last four digits of the phone number, so a test or a demo can ask
for any path through the message life cycle by choosing the recipient:

    ======  =============================================  =================================
    suffix  RCS                                            SMS
    ======  =============================================  =================================
    other   Accepted; ``delivered``, then ``read``         Accepted; ``delivered``
    9990    NotCapable() (not an RCS user)                 Accepted; ``delivered``
    9991    Accepted; ``undelivered``                      Accepted; ``delivered``
    9992    Accepted; never any report (the gateway        Accepted; ``delivered``
            expires it when its validity ends)
    9993    Accepted; ``delivered``, never read            Accepted; ``delivered``
    9994    Accepted; ``delivered``, ``read``, then a      Accepted; ``delivered``
            ClickReport for the first suggestion of the
            first card (none if there is no such
            suggestion)
    9995    Rejected("rejected by upstream")               Rejected("rejected by upstream")
    9996    NotCapable()                                   Accepted; ``undelivered``
    9997    the first 3 submits of a message id return     the same: 3 x TryLater, then
            TryLater("upstream unreachable"), the 4th      Accepted; ``delivered``
            and later Accepted; ``delivered``, ``read``
    ======  =============================================  =================================

A resubmission of an accepted message id returns the first answer again and schedules nothing:
the message id is the idempotency key, so a dispatcher that died between submit and commit does
not send twice.

Timing, all on the injected clock: ``submit()`` never sleeps. ``sent_latency`` is the upstream's
processing time before the handset is reached, so for a message submitted at clock time ``t``:

* ``delivered`` / ``undelivered`` is due at ``t + sent_latency + delivered_latency``;
* ``read`` at that moment ``+ read_latency``;
* the click at the read moment ``+ click_latency``.

A report's ``at`` is its due time, not the moment it is handed over. With ``zero_latency``
every latency is 0.

The ``realistic`` profile draws the outcome of every number without a special suffix from a
generator seeded by ``(seed, message id)``, so a message's fate is reproducible: RCS 80%
delivered and read, 10% NotCapable, 5% undelivered, 5% delivered and never read; SMS has no
capability check and no read receipts, so it is 5% undelivered and otherwise delivered. Its
latencies are jittered by +-50%. Special suffixes behave as in the table in both profiles.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from rcsgate.clock import Clock
from rcsgate.connectors.base import (
    Accepted,
    ClickReport,
    NotCapable,
    OutboundMessage,
    Rejected,
    Report,
    StatusReport,
    SubmitLog,
    SubmitResult,
    TryLater,
)

Profile = Literal["deterministic", "realistic"]
Outcome = Literal["read", "delivered", "undelivered", "silent", "click", "not_capable", "rejected"]

# How many submits of a 9997 message fail before it goes through.
TRANSIENT_FAILURES: Final = 3
REJECT_REASON: Final = "rejected by upstream"
UNREACHABLE_ERROR: Final = "upstream unreachable"

_RCS_SPECIAL: Final[dict[str, Outcome]] = {
    "9990": "not_capable",
    "9991": "undelivered",
    "9992": "silent",
    "9993": "delivered",
    "9994": "click",
    "9995": "rejected",
    "9996": "not_capable",
    "9997": "read",
}
_SMS_SPECIAL: Final[dict[str, Outcome]] = {
    "9990": "delivered",
    "9991": "delivered",
    "9992": "delivered",
    "9993": "delivered",
    "9994": "delivered",
    "9995": "rejected",
    "9996": "undelivered",
    "9997": "delivered",
}
# Cumulative upper bounds of the realistic RCS distribution.
_REALISTIC_RCS: Final[tuple[tuple[float, Outcome], ...]] = (
    (0.80, "read"),
    (0.90, "not_capable"),
    (0.95, "undelivered"),
    (1.00, "delivered"),
)
_JITTER: Final = 0.5


@dataclass(frozen=True, slots=True)
class Timing:
    sent: float
    delivered: float
    read: float
    click: float


@dataclass(order=True, slots=True)
class Pending:
    # Ordered by (due, seq): seq is unique and increasing, so ties keep scheduling order and
    # the report itself is never compared.
    due: datetime
    seq: int
    report: Report = field(compare=False)
    attempts: int = field(default=0, compare=False)


def first_suggestion(content: dict[str, Any]) -> tuple[str, str | None] | None:
    """Text and postback data of the first card's first suggestion, if the content has one.

    Content comes from the database (or the wire) as JSON, so every level is checked rather than trusted."""
    cards = content.get("cards")
    if not isinstance(cards, list | tuple) or not cards or not isinstance(cards[0], dict):
        return None
    suggestions = cards[0].get("suggestions")
    if not isinstance(suggestions, list | tuple) or not suggestions or not isinstance(suggestions[0], dict):
        return None
    text = suggestions[0].get("text")
    if not isinstance(text, str):
        return None
    postback = suggestions[0].get("postback_data")
    return text, postback if isinstance(postback, str) else None


class ReportQueue:
    """Scheduled reports in due order (ties in scheduling order). A batch that could not be handed
    over goes back to its old place with ``requeue``, so nothing behind it overtakes it."""

    def __init__(self, on_push: Callable[[], None] | None = None) -> None:
        # (due, seq, pending): tuples compare in C, a dataclass's generated ordering in Python (the
        # heap's comparisons were the local RBM's largest own cost after aiohttp, py-spy 2026-12-05).
        self._heap: list[tuple[datetime, int, Pending]] = []
        self._seq = 0
        # Called after every push, so a delivery loop can wake at once instead of at its next tick.
        self.on_push = on_push

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, report: Report) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (report.at, self._seq, Pending(report.at, self._seq, report)))
        if self.on_push is not None:
            self.on_push()

    def next_due(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime, limit: int) -> list[Pending]:
        batch: list[Pending] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(batch) < limit:
            batch.append(heapq.heappop(heap)[2])
        return batch

    def requeue(self, items: Iterable[Pending]) -> None:
        for item in items:
            heapq.heappush(self._heap, (item.due, item.seq, item))

    def clear(self) -> None:
        self._heap.clear()


class SimulatedUpstream:
    """The upstream's memory and rules: answers submits and schedules reports into ``reports``."""

    def __init__(
        self,
        *,
        clock: Clock,
        sent_latency: float = 0.05,
        delivered_latency: float = 0.2,
        read_latency: float = 1.0,
        click_latency: float = 0.5,
        profile: Profile = "deterministic",
        seed: int = 0,
        zero_latency: bool = False,
        reports: ReportQueue | None = None,
    ) -> None:
        latencies = {
            "sent_latency": sent_latency,
            "delivered_latency": delivered_latency,
            "read_latency": read_latency,
            "click_latency": click_latency,
        }
        for label, value in latencies.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
        if profile not in ("deterministic", "realistic"):
            raise ValueError(f"profile must be 'deterministic' or 'realistic', got {profile!r}")
        self.clock = clock
        self.profile: Profile = profile
        self.seed = seed
        self.zero_latency = zero_latency
        self.timing = (
            Timing(0.0, 0.0, 0.0, 0.0)
            if zero_latency
            else Timing(sent_latency, delivered_latency, read_latency, click_latency)
        )
        self.submits = SubmitLog()
        self.reports = reports if reports is not None else ReportQueue()
        # The answer given to each accepted message id, returned again on resubmission.
        self._accepted: dict[int, Accepted] = {}

    @property
    def accepted_count(self) -> int:
        return len(self._accepted)

    def submit(self, message: OutboundMessage) -> SubmitResult:
        attempt = self.submits.record(message.message_id)
        previous = self._accepted.get(message.message_id)
        if previous is not None:
            return previous
        outcome, timing = self.plan(message)
        if message.phone.endswith("9997") and attempt <= TRANSIENT_FAILURES:
            return TryLater(UNREACHABLE_ERROR)
        if outcome == "not_capable":
            return NotCapable()
        if outcome == "rejected":
            return Rejected(REJECT_REASON)
        accepted = Accepted(upstream_id=f"sim-{message.message_id}")
        self._accepted[message.message_id] = accepted
        for report in schedule(message, outcome, timing, self.clock.now()):
            self.reports.push(report)
        return accepted

    def resume(self, message: OutboundMessage, *, delivered: bool, sent_at: datetime) -> int:
        """Take back a message this upstream accepted before a restart of its process: schedule the
        reports it still owes (all of them for a sent message, those after delivery for a delivered
        one), due as they were, so a crash or a stop loses none. Returns how many it scheduled."""
        self._accepted[message.message_id] = Accepted(upstream_id=f"sim-{message.message_id}")
        outcome, timing = self.plan(message)
        reports = schedule(message, outcome, timing, sent_at - timedelta(seconds=timing.sent))
        if delivered:
            reports = [r for r in reports if not (isinstance(r, StatusReport) and r.status == "delivered")]
        for report in reports:
            self.reports.push(report)
        return len(reports)

    def plan(self, message: OutboundMessage) -> tuple[Outcome, Timing]:
        rcs = message.channel == "rcs"
        special = (_RCS_SPECIAL if rcs else _SMS_SPECIAL).get(message.phone[-4:])
        if special is not None:
            return special, self.timing
        if self.profile == "deterministic":
            return ("read" if rcs else "delivered"), self.timing
        # A generator per message rather than one shared stream: the outcome must not depend
        # on the order or number of other submissions, or on resubmissions. A str seed is
        # hashed with SHA-512, stable across processes unlike hash().
        rng = random.Random(f"rcsgate-simulator:{self.seed}:{message.message_id}")
        draw = rng.random()
        outcome: Outcome = next((o for bound, o in _REALISTIC_RCS if draw < bound), "delivered")
        if not rcs:
            outcome = "undelivered" if outcome == "undelivered" else "delivered"
        t = self.timing
        jitter = [rng.uniform(1 - _JITTER, 1 + _JITTER) for _ in range(4)]
        return outcome, Timing(
            t.sent * jitter[0], t.delivered * jitter[1], t.read * jitter[2], t.click * jitter[3]
        )


def schedule(message: OutboundMessage, outcome: Outcome, timing: Timing, now: datetime) -> list[Report]:
    """The reports an accepted message will produce, each stamped with its due time."""
    if outcome == "silent":
        return []
    mid = message.message_id
    reached = now + timedelta(seconds=timing.sent + timing.delivered)
    if outcome == "undelivered":
        return [StatusReport(mid, "undelivered", reached)]
    reports: list[Report] = [StatusReport(mid, "delivered", reached)]
    if outcome == "delivered":
        return reports
    read = reached + timedelta(seconds=timing.read)
    reports.append(StatusReport(mid, "read", read))
    if outcome == "click":
        suggestion = first_suggestion(message.content)
        if suggestion is not None:
            text, postback = suggestion
            reports.append(ClickReport(mid, text, postback, read + timedelta(seconds=timing.click)))
    return reports
