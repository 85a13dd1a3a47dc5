"""Builds the background machinery of a process: the upstream connector, the dispatcher loops and
the webhook sender, from settings. `rcsgate serve` runs it beside the API; `rcsgate worker` alone."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Final

from rcsgate.clock import Clock
from rcsgate.config import Settings
from rcsgate.connectors.base import Connector
from rcsgate.connectors.registry import Builder, ConnectorRegistry
from rcsgate.connectors.simulator import SimulatorConnector
from rcsgate.dispatch.dispatcher import Dispatcher
from rcsgate.dispatch.liveness import ClaimHolder, process_label
from rcsgate.dispatch.runner import Loop
from rcsgate.domain.backoff import parse_schedule
from rcsgate.domain.records import ConnectorRecord
from rcsgate.logging_setup import get_logger
from rcsgate.services import dispatching, upstream_events
from rcsgate.services.repeats import purge_fingerprints, purge_rate_windows
from rcsgate.store.db import Database
from rcsgate.store.signals import DUE, HOUSEKEEPING_LOCK, Signals, SingletonLock
from rcsgate.webhooks.sender import WebhookSender

# How often a worker looks for upstream events left unapplied, and how many it applies at a time.
LEFT_OVER_POLL_SECONDS: Final = 5.0
LEFT_OVER_BATCH: Final = 500

log = get_logger("rcsgate.runtime")


def build_connector(settings: Settings, clock: Clock) -> Connector:
    """The simulator service over HTTP when RCSGATE_UPSTREAM_URL is set, else the embedded simulator."""
    if settings.upstream_url:
        from rcsgate.connectors.circuit_breaker import CircuitBreaker
        from rcsgate.connectors.http_simulator import HttpSimulatorConnector

        return HttpSimulatorConnector(
            base_url=settings.upstream_url,
            timeout_seconds=settings.upstream_timeout_seconds,
            breaker=CircuitBreaker(
                name=HttpSimulatorConnector.name,
                threshold=settings.upstream_breaker_threshold,
                cooldown=settings.upstream_breaker_cooldown_seconds,
            ),
        )
    return SimulatorConnector(
        clock=clock,
        sent_latency=settings.simulator_sent_latency,
        delivered_latency=settings.simulator_delivered_latency,
        read_latency=settings.simulator_read_latency,
        profile="realistic" if settings.simulator_profile == "realistic" else "deterministic",
        seed=settings.simulator_seed,
        zero_latency=settings.simulator_zero_latency,
    )


def connector_builder(
    settings: Settings, clock: Clock, db: Database | None = None, wake: asyncio.Event | None = None
) -> Builder:
    """How this process turns a configured connector (a database row) into a working one. ``db``
    (needed by SMPP connectors, which keep their receipts themselves) and ``wake`` (set after a
    transaction that wrote webhooks)."""

    def build(record: ConnectorRecord) -> Connector:
        from rcsgate.connectors.circuit_breaker import CircuitBreaker

        breaker = CircuitBreaker(
            name=record.name,
            threshold=settings.upstream_breaker_threshold,
            cooldown=settings.upstream_breaker_cooldown_seconds,
        )
        if record.kind == "rbm":
            from rcsgate.connectors.rbm.connector import RbmConnector
            from rcsgate.connectors.rbm.settings import RbmSettings

            return RbmConnector(
                name=record.name,
                settings=RbmSettings.of(record.config, record.secrets),
                clock=clock,
                timeout_seconds=settings.upstream_timeout_seconds,
                breaker=breaker,
            )
        if record.kind == "smpp" and db is not None:
            from rcsgate.connectors.smpp.connector import SmppConnector
            from rcsgate.connectors.smpp.settings import SmppSettings
            from rcsgate.services.smpp_records import SmppRecords

            return SmppConnector(
                name=record.name,
                connector_id=record.id,
                settings=SmppSettings.of(record.config, record.secrets),
                records=SmppRecords(
                    db, clock, connector_id=record.id, connector=record.name, wake=wake.set if wake else None
                ),
                clock=clock,
            )
        raise ValueError(f"this version cannot run {record.kind} connectors")

    return build


@dataclass
class Runtime:
    connectors: ConnectorRegistry
    dispatcher: Dispatcher
    webhooks: WebhookSender
    settings: Settings
    db: Database
    clock: Clock
    signals: Signals
    holder: ClaimHolder

    @classmethod
    def build(
        cls,
        *,
        settings: Settings,
        db: Database,
        clock: Clock,
        signals: Signals,
        role: str = "worker",
    ) -> Runtime:
        # The dispatcher sets it after writing outbox rows: the sender need not wait for its poll.
        webhooks_wake = asyncio.Event()
        # One liveness row for the process: its dispatcher's and webhook sender's claims carry it.
        holder = ClaimHolder(
            db=db, clock=clock, dead_seconds=settings.holder_dead_seconds, label=process_label(role)
        )
        connectors = ConnectorRegistry(
            db=db,
            default=build_connector(settings, clock),
            build=connector_builder(settings, clock, db, webhooks_wake),
            refresh_seconds=settings.connectors_refresh_seconds,
        )
        dispatcher = Dispatcher(
            db=db,
            clock=clock,
            connectors=connectors,
            wake=signals.due,
            sweep_wake=signals.campaigns,
            webhooks_wake=webhooks_wake,
            poll_seconds=settings.worker_poll_seconds,
            idle_seconds=settings.worker_idle_poll_seconds,
            lease_seconds=settings.claim_lease_seconds,
            holder=holder,
            dead_seconds=settings.holder_dead_seconds,
            call_seconds=settings.upstream_timeout_seconds,
            # One process works on an SQLite database (the lock on <database>.lock, cli/startup.py):
            # any other holder there is a predecessor that died, its claims free at once.
            exclusive=settings.embedded,
        )
        webhooks = WebhookSender(
            db=db,
            clock=clock,
            schedule=parse_schedule(settings.webhook_retry_schedule),
            allow_private=settings.webhooks_allow_private,
            timeout_seconds=settings.webhook_timeout_seconds,
            poll_seconds=settings.worker_poll_seconds,
            idle_seconds=settings.worker_idle_poll_seconds,
            # Twice the message lease: deliveries wait behind a slow receiver's slots for a while.
            lease_seconds=2 * settings.claim_lease_seconds,
            wake=webhooks_wake,
            holder=holder,
        )
        return cls(
            connectors=connectors,
            dispatcher=dispatcher,
            webhooks=webhooks,
            settings=settings,
            db=db,
            clock=clock,
            signals=signals,
            holder=holder,
        )

    async def _upstream(self, stop: asyncio.Event) -> None:
        await self.connectors.start(self.dispatcher.on_reports)
        await self._resume_simulator()
        try:
            await self.connectors.run(stop)
            # Reports for the last submitted batch must still reach the sink: stop the connectors
            # only once the send loop has recorded what it submitted.
            await self.dispatcher.sending_stopped.wait()
        finally:
            await self.connectors.stop()

    async def _resume_simulator(self) -> None:
        """The embedded simulator keeps its pending reports in memory; after a crash or a stop the
        next process takes back what it owed (SimulatorConnector.resume). Embedded mode only: there
        one process holds the simulator, so nothing is delivered twice."""
        simulator = self.connectors.default
        if not (self.settings.embedded and isinstance(simulator, SimulatorConnector)):
            return
        owed = await dispatching.owed_reports(self.db, upstream=simulator.name)
        scheduled = sum(simulator.resume(m, delivered=d, sent_at=at) for m, d, at in owed)
        if owed:
            log.info("simulator_resumed", messages=len(owed), reports=scheduled)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        lock = SingletonLock(self.db, HOUSEKEEPING_LOCK)
        try:
            while not stop.is_set():
                if await lock.held():
                    await purge_fingerprints(
                        self.db, self.clock, window=self.settings.duplicate_window_seconds
                    )
                    await purge_rate_windows(self.db, self.clock)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=30)
        finally:
            await lock.release()

    async def _left_over_events(self, stop: asyncio.Event) -> None:
        """Apply the upstream events a crash left stored but unapplied (services.upstream_events):
        their pushes were answered, so their upstream will not send them again."""
        while not stop.is_set():
            events, applied = await upstream_events.apply_left_over(
                self.db, self.clock, limit=LEFT_OVER_BATCH
            )
            if applied.fallbacks:
                self.signals.poke(DUE)
            if events >= LEFT_OVER_BATCH:
                continue  # more are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=LEFT_OVER_POLL_SECONDS)

    def loops(self) -> list[tuple[str, Loop]]:
        return [
            ("claim-holder", self.holder.run),
            ("upstream", self._upstream),
            ("dispatch-send", self.dispatcher.send_loop),
            ("dispatch-sweep", self.dispatcher.sweep_loop),
            ("webhooks", self.webhooks.run),
            ("housekeeping", self._housekeeping),
            ("upstream-left-over", self._left_over_events),
            # Wake-ups from API processes (PostgreSQL LISTEN; idle on SQLite).
            ("listen", self.signals.listen_loop),
            ("notify", self.signals.notify_loop),
        ]
