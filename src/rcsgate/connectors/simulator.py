"""The embedded upstream: a simulated RCS and SMS provider, the default when no real one is configured.

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

Timing, all on the injected clock: ``submit()`` returns at once (it never sleeps, so tests with
a ManualClock never wait for simulated latencies). ``sent_latency`` is the upstream's simulated
processing time before the handset is reached, so for a message submitted at clock time ``t``:

* ``delivered`` / ``undelivered`` is due at ``t + sent_latency + delivered_latency``;
* ``read`` at that moment ``+ read_latency``;
* the click at the read moment ``+ click_latency``.

A report's ``at`` is its due time, not the moment it was handed to the sink. A background task
(``start(sink)``) looks every ``tick`` real seconds for reports whose due time has come
(``clock.now() >= due``) and awaits ``sink(reports)`` with them in batches, in due order, ties in
the order they were scheduled; no report is ever handed over before its due time. With ``zero_latency``
every latency is 0 and the task is also woken by each submit, so benchmarks are not capped by
the tick.

The ``realistic`` profile draws the outcome of every number without a special suffix from a
generator seeded by ``(seed, message id)``, so a message's fate is reproducible: RCS 80%
delivered and read, 10% NotCapable, 5% undelivered, 5% delivered and never read; SMS has no
capability check and no read receipts, so it is 5% undelivered and otherwise delivered. Its
latencies are jittered by +-50%. Special suffixes behave as in the table in both profiles.

Pending reports live only in memory: ``stop()`` drops them, and so does a crash; such messages
then end when their validity expires, as they would with a real upstream that lost them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from rcsgate.clock import Clock
from rcsgate.connectors.base import (
    Accepted,
    ClickReport,
    Connector,
    NotCapable,
    OutboundMessage,
    Rejected,
    Report,
    ReportSink,
    StatusReport,
    SubmitLog,
    SubmitResult,
    TryLater,
)
from rcsgate.logging_setup import get_logger

Profile = Literal["deterministic", "realistic"]
_Outcome = Literal["read", "delivered", "undelivered", "silent", "click", "not_capable", "rejected"]

# A sink failure is usually a transient database problem; a few retries ride it out, while a
# poison report must not block the reports behind it forever.
MAX_SINK_ATTEMPTS: Final = 5
# How long stop() waits for the reports already due to reach the sink.
STOP_GRACE_SECONDS: Final = 5.0
# How many submits of a 9997 message fail before it goes through.
TRANSIENT_FAILURES: Final = 3
REJECT_REASON: Final = "rejected by upstream"
UNREACHABLE_ERROR: Final = "upstream unreachable"
# Reports handed to the sink per call: one database transaction applies them all.
_BATCH: Final = 500

_RCS_SPECIAL: Final[dict[str, _Outcome]] = {
    "9990": "not_capable",
    "9991": "undelivered",
    "9992": "silent",
    "9993": "delivered",
    "9994": "click",
    "9995": "rejected",
    "9996": "not_capable",
    "9997": "read",
}
_SMS_SPECIAL: Final[dict[str, _Outcome]] = {
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
_REALISTIC_RCS: Final[tuple[tuple[float, _Outcome], ...]] = (
    (0.80, "read"),
    (0.90, "not_capable"),
    (0.95, "undelivered"),
    (1.00, "delivered"),
)
_JITTER: Final = 0.5

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Timing:
    sent: float
    delivered: float
    read: float
    click: float


@dataclass(order=True, slots=True)
class _Pending:
    # Ordered by (due, seq): seq is unique and increasing, so ties keep scheduling order and
    # the report itself is never compared.
    due: datetime
    seq: int
    report: Report = field(compare=False)
    attempts: int = field(default=0, compare=False)


def _first_suggestion(content: dict[str, Any]) -> tuple[str, str | None] | None:
    """Text and postback data of the first card's first suggestion, if the content has one.

    Content comes from the database as JSON, so every level is checked rather than trusted."""
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


class SimulatorConnector:
    """A deterministic stand-in for an RCS/SMS upstream; see the module docstring for outcomes."""

    name: str = "simulator"

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
        tick: float = 0.01,
        zero_latency: bool = False,
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
        if not math.isfinite(tick) or tick <= 0:
            raise ValueError(f"tick must be a finite number > 0, got {tick!r}")
        if profile not in ("deterministic", "realistic"):
            raise ValueError(f"profile must be 'deterministic' or 'realistic', got {profile!r}")
        self._clock = clock
        self._profile: Profile = profile
        self._seed = seed
        self._tick = tick
        self._zero_latency = zero_latency
        self._timing = (
            _Timing(0.0, 0.0, 0.0, 0.0)
            if zero_latency
            else _Timing(sent_latency, delivered_latency, read_latency, click_latency)
        )
        self.submits = SubmitLog()
        # The answer given to each accepted message id, returned again on resubmission so a
        # dispatcher that crashed between submit and commit does not send twice.
        self._accepted: dict[int, Accepted] = {}
        self._heap: list[_Pending] = []
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        """Reports scheduled but not yet handed to the sink."""
        return len(self._heap)

    # ------------------------------------------------------------------ Connector

    async def submit(self, message: OutboundMessage) -> SubmitResult:
        attempt = self.submits.record(message.message_id)
        previous = self._accepted.get(message.message_id)
        if previous is not None:
            return previous
        outcome, timing = self._plan(message)
        if message.phone.endswith("9997") and attempt <= TRANSIENT_FAILURES:
            return TryLater(UNREACHABLE_ERROR)
        if outcome == "not_capable":
            return NotCapable()
        if outcome == "rejected":
            return Rejected(REJECT_REASON)
        accepted = Accepted(upstream_id=f"sim-{message.message_id}")
        self._accepted[message.message_id] = accepted
        self._schedule(message, outcome, timing)
        return accepted

    async def start(self, sink: ReportSink) -> None:
        if self._task is not None and not self._task.done():
            raise RuntimeError("the simulator is already started")
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(sink, self._wakeup), name="rcsgate-simulator-reports")

    async def stop(self) -> None:
        """Hand over the reports already due (bounded by STOP_GRACE_SECONDS), then stop.

        Reports not yet due are dropped: the simulator keeps them in memory only, so after a
        restart those messages end by validity expiry (an upstream outside the process keeps them)."""
        task, self._task = self._task, None
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if task is not None and task is not asyncio.current_task():
            # A sink that stops the simulator from inside the task must not wait for itself.
            _done, pending = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
            for late in pending:
                late.cancel()
                # asyncio.wait rather than awaiting the task: it neither raises the task's
                # CancelledError nor swallows a cancellation aimed at our caller.
                await asyncio.wait({late})
        elif task is not None:
            task.cancel()
        self._heap.clear()
        self._closing = False

    # ------------------------------------------------------------------ planning

    def _plan(self, message: OutboundMessage) -> tuple[_Outcome, _Timing]:
        rcs = message.channel == "rcs"
        special = (_RCS_SPECIAL if rcs else _SMS_SPECIAL).get(message.phone[-4:])
        if special is not None:
            return special, self._timing
        if self._profile == "deterministic":
            return ("read" if rcs else "delivered"), self._timing
        # A generator per message rather than one shared stream: the outcome must not depend
        # on the order or number of other submissions, or on resubmissions. A str seed is
        # hashed with SHA-512, stable across processes unlike hash().
        rng = random.Random(f"rcsgate-simulator:{self._seed}:{message.message_id}")
        draw = rng.random()
        outcome: _Outcome = next((o for bound, o in _REALISTIC_RCS if draw < bound), "delivered")
        if not rcs:
            outcome = "undelivered" if outcome == "undelivered" else "delivered"
        t = self._timing
        jitter = [rng.uniform(1 - _JITTER, 1 + _JITTER) for _ in range(4)]
        return outcome, _Timing(
            t.sent * jitter[0], t.delivered * jitter[1], t.read * jitter[2], t.click * jitter[3]
        )

    def _schedule(self, message: OutboundMessage, outcome: _Outcome, timing: _Timing) -> None:
        if outcome == "silent":
            return
        mid = message.message_id
        reached = self._clock.now() + timedelta(seconds=timing.sent + timing.delivered)
        if outcome == "undelivered":
            self._push(StatusReport(mid, "undelivered", reached))
            return
        self._push(StatusReport(mid, "delivered", reached))
        if outcome == "delivered":
            return
        read = reached + timedelta(seconds=timing.read)
        self._push(StatusReport(mid, "read", read))
        if outcome == "click":
            suggestion = _first_suggestion(message.content)
            if suggestion is not None:
                text, postback = suggestion
                self._push(ClickReport(mid, text, postback, read + timedelta(seconds=timing.click)))

    def _push(self, report: Report) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Pending(report.at, self._seq, report))
        if self._wakeup is not None:
            self._wakeup.set()

    # ------------------------------------------------------------------ delivery

    async def _run(self, sink: ReportSink, wakeup: asyncio.Event) -> None:
        while True:
            # Cleared before draining so a submit that lands while the sink is awaited wakes
            # the next round at once instead of after a tick.
            wakeup.clear()
            try:
                await self._deliver_due(sink)
            except Exception:
                # Only a broken clock could get here; the task must outlive it.
                log.exception("simulator_loop_error")
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await wakeup.wait()

    async def _deliver_due(self, sink: ReportSink) -> None:
        # One reading of the clock per round bounds the round even if submits keep coming.
        now = self._clock.now()
        while self._heap and self._heap[0].due <= now:
            batch: list[_Pending] = []
            while self._heap and self._heap[0].due <= now and len(batch) < _BATCH:
                batch.append(heapq.heappop(self._heap))
            try:
                await sink([item.report for item in batch])
            except Exception:
                for item in batch:
                    item.attempts += 1
                    if item.attempts >= MAX_SINK_ATTEMPTS:
                        log.error(
                            "simulator_report_dropped",
                            message_id=item.report.message_id,
                            report=type(item.report).__name__,
                            attempts=item.attempts,
                            exc_info=True,
                        )
                        continue
                    # Back at its old place, (due, seq) unchanged: nothing behind it overtakes it.
                    heapq.heappush(self._heap, item)
                log.warning("simulator_sink_failed", reports=len(batch), exc_info=True)
                return  # the rest waits one tick
            await asyncio.sleep(0)


if TYPE_CHECKING:

    def _conforms(connector: SimulatorConnector) -> Connector:
        return connector
