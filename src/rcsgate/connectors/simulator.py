"""The embedded upstream: a simulated RCS and SMS provider, the default when no real one is configured.

What it answers and which reports it schedules (outcomes by the last four digits of the number,
latencies, the realistic profile) lives in connectors/simulation.py, shared with the standalone
simulator service (``rcsgate simulator``, connectors/simulator_service.py); this module only
hands the reports over to an in-process sink.

A background task (``start(sink)``) looks every ``tick`` real seconds, while reports are scheduled,
for those whose due time has come on the injected clock (``clock.now() >= due``) and awaits
``sink(reports)`` with them in batches, in due order, ties in the order they were scheduled; no
report is ever handed over before its due time. Each scheduled report also wakes the task (so
zero-latency reports are not capped by the tick), and with none scheduled it only waits for that.

Pending reports live in memory: ``stop()`` hands over those already due and drops the rest, and a
crash drops them all. The database knows which messages the simulator accepted and where they
stand, and the outcome of each is a function of the message, so the next process takes them back
(``resume``, called by dispatch/runtime.py in embedded mode) and delivers every report still owed:
neither a crash nor a stop loses one. (The simulator service keeps them across our restarts.)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import datetime
from typing import TYPE_CHECKING, Final

from rcsgate.clock import Clock
from rcsgate.connectors.base import (
    Connector,
    OutboundMessage,
    ReportSink,
    Revoked,
    RevokeResult,
    SubmitLog,
    SubmitResult,
)
from rcsgate.connectors.simulation import (
    REJECT_REASON,
    TRANSIENT_FAILURES,
    UNREACHABLE_ERROR,
    Pending,
    Profile,
    ReportQueue,
    SimulatedUpstream,
)
from rcsgate.domain.errors import StorageFull
from rcsgate.logging_setup import get_logger

__all__ = [
    "MAX_SINK_ATTEMPTS",
    "REJECT_REASON",
    "STOP_GRACE_SECONDS",
    "TRANSIENT_FAILURES",
    "UNREACHABLE_ERROR",
    "Profile",
    "SimulatorConnector",
]

# A sink failure is usually a transient database problem; a few retries ride it out, while a
# poison report must not block the reports behind it forever.
MAX_SINK_ATTEMPTS: Final = 5
# How long stop() waits for the reports already due to reach the sink.
STOP_GRACE_SECONDS: Final = 5.0
# Reports handed to the sink per call: one database transaction applies them all.
_BATCH: Final = 500

log = get_logger(__name__)


class SimulatorConnector:
    """A deterministic stand-in for an RCS/SMS upstream; see the module docstring for outcomes."""

    name: str = "simulator"
    revokes: bool = False

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
        if not math.isfinite(tick) or tick <= 0:
            raise ValueError(f"tick must be a finite number > 0, got {tick!r}")
        self._clock = clock
        self._tick = tick
        self._reports = ReportQueue(on_push=self._wake)
        self._upstream = SimulatedUpstream(
            clock=clock,
            sent_latency=sent_latency,
            delivered_latency=delivered_latency,
            read_latency=read_latency,
            click_latency=click_latency,
            profile=profile,
            seed=seed,
            zero_latency=zero_latency,
            reports=self._reports,
        )
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        """Reports scheduled but not yet handed to the sink."""
        return len(self._reports)

    @property
    def submits(self) -> SubmitLog:
        return self._upstream.submits

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    # ------------------------------------------------------------------ Connector

    def admits(self) -> int | None:
        return None

    async def revoke(self, message: OutboundMessage) -> RevokeResult:
        # Never called (revokes is False): an expired message is simply given up on.
        return Revoked()

    async def submit(self, message: OutboundMessage) -> SubmitResult:
        return self._upstream.submit(message)

    def resume(self, message: OutboundMessage, *, delivered: bool, sent_at: datetime) -> int:
        """See SimulatedUpstream.resume: reports owed for a message accepted before a restart."""
        return self._upstream.resume(message, delivered=delivered, sent_at=sent_at)

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
        self._reports.clear()
        self._closing = False

    # ------------------------------------------------------------------ delivery

    async def _run(self, sink: ReportSink, wakeup: asyncio.Event) -> None:
        while True:
            # Cleared before draining so a submit that lands while the sink is awaited wakes
            # the next round at once instead of after a tick.
            wakeup.clear()
            # Read before draining: a round that began before stop() may have missed what the last
            # submits scheduled, so stopping takes one full round after the flag is seen.
            closing = self._closing
            try:
                await self._deliver_due(sink)
            except Exception:
                # Only a broken clock could get here; the task must outlive it.
                log.exception("simulator_loop_error")
            if closing:
                return
            # With nothing scheduled only a push (which sets wakeup) can bring work: no ticking.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick if len(self._reports) else None):
                    await wakeup.wait()

    async def _deliver_due(self, sink: ReportSink) -> None:
        # One reading of the clock per round bounds the round even if submits keep coming.
        now = self._clock.now()
        while batch := self._reports.pop_due(now, _BATCH):
            try:
                await sink([item.report for item in batch])
            except Exception as exc:
                # A full database is no fault of the reports: they are kept however long it lasts.
                full = isinstance(exc, StorageFull)
                kept: list[Pending] = []
                for item in batch:
                    if not full:
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
                    kept.append(item)
                # Back at their old places, (due, seq) unchanged: nothing behind them overtakes them.
                self._reports.requeue(kept)
                if full:
                    await asyncio.sleep(1.0)  # the database says it (once); try again in a second
                    return
                log.warning("simulator_sink_failed", reports=len(batch), exc_info=True)
                return  # the rest waits one tick
            await asyncio.sleep(0)


if TYPE_CHECKING:

    def _conforms(connector: SimulatorConnector) -> Connector:
        return connector
