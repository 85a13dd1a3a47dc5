"""The dispatcher's loops: send due messages through the connector, and sweep expiries and lapsed claims.

Timing decisions use the injected clock; the loops themselves poll in real time (``poll_seconds``)
and wake at once when the API accepts a message in the same process.

Sending is a two-stage pipeline: while the upstream's answers for one batch are recorded, the next
batch is claimed and submitted. Submits still go one batch at a time, each claimed only after the
previous batch's submits have all answered, so a connector's ``admits()`` (its circuit breaker)
sees every answer before the next claim, as without the overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal

from rcsgate.clock import Clock
from rcsgate.connectors.base import (
    Accepted,
    AlreadyDelivered,
    NotCapable,
    OutboundMessage,
    Rejected,
    Report,
    Revoked,
    RevokeResult,
    SubmitResult,
    TryLater,
)
from rcsgate.connectors.registry import ConnectorRegistry
from rcsgate.connectors.upstream_calls import CIRCUIT_OPEN, STOPPING
from rcsgate.dispatch.liveness import HOLDER_STALE, ClaimHolder
from rcsgate.dispatch.recorder import Recorder
from rcsgate.domain.backoff import IdleWait
from rcsgate.logging_setup import get_logger
from rcsgate.metrics.instruments import upstream_call
from rcsgate.services import campaigns, dispatching
from rcsgate.store.db import Database
from rcsgate.store.signals import SWEEP_LOCK, SingletonLock

log = get_logger("rcsgate.dispatch")

# What a connector answers when it refused a call without making it (connectors/upstream_calls.py).
_REFUSALS = frozenset({CIRCUIT_OPEN, STOPPING, HOLDER_STALE})


class Dispatcher:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        connectors: ConnectorRegistry,
        wake: asyncio.Event,
        sweep_wake: asyncio.Event | None = None,
        webhooks_wake: asyncio.Event | None = None,
        batch_size: int = 200,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.05,
        sweep_seconds: float = 0.25,
        idle_seconds: float = 1.0,
        holder: ClaimHolder | None = None,
        dead_seconds: float = 13.0,
        call_seconds: float = 10.0,
        exclusive: bool = False,
    ) -> None:
        self.db = db
        self.clock = clock
        self.connectors = connectors
        self.wake = wake
        # Set when a campaign is created, so an instant campaign starts now rather than at the next sweep.
        self.sweep_wake = sweep_wake or asyncio.Event()
        # Set after a transaction that may have written outbox rows, so the webhook sender looks now.
        self.webhooks_wake = webhooks_wake or asyncio.Event()
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        # This process's liveness (dispatch/liveness.py): claims carry its id, and no submit or revoke
        # starts unless it is fresh for the call's timeout (``call_seconds``). None: claims without a
        # holder, which only their leases free (tests of the dispatcher alone).
        self.holder = holder
        self.dead_seconds = dead_seconds
        self.call_seconds = call_seconds
        # Embedded mode: no other process works on this database, so other holders are dead ones.
        self.exclusive = exclusive
        # When another holder will be dead if it beats no more (services/dispatching.Reaped).
        self._next_death: datetime | None = None
        self.poll_seconds = poll_seconds
        self.sweep_seconds = sweep_seconds
        # Looks for due messages, and sweeps, come less often while they find nothing.
        self.idle = IdleWait(poll_seconds, idle_seconds)
        self.sweep_idle = IdleWait(sweep_seconds, idle_seconds)
        # Submit answers and reports, written together (see recorder.py).
        self.recorder = Recorder(db, clock, mine=holder.ids if holder is not None else None)
        # Expiry, the lease reaper and the campaign scheduler run in one process at a time.
        self.sweep_lock = SingletonLock(db, SWEEP_LOCK)
        # Whether this process held that lock at its last look: it then exports the database gauges.
        self.leading = False
        # Set when the send loop has returned: its last batch is submitted and recorded, so the
        # connector can be stopped without losing an answer (see Runtime._upstream).
        self.sending_stopped = asyncio.Event()
        self.sending_stopped.set()

    async def send_loop(self, stop: asyncio.Event) -> None:
        self.sending_stopped.clear()
        try:
            await self._send(stop)
        finally:
            self.sending_stopped.set()

    async def _send(self, stop: asyncio.Event) -> None:
        recording: asyncio.Task[None] | None = None
        # Nothing is claimed before the configured connectors are known (see ConnectorRegistry).
        while not self.connectors.ready.is_set() and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connectors.ready.wait(), timeout=self.poll_seconds)
        try:
            while not stop.is_set():
                holder_id = self._holder_id()
                if holder_id is False:
                    # Not registered, or beats failing: claim nothing that could not be sent.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=max(self.poll_seconds, 0.2))
                    continue
                admits = self.connectors.admits()
                if admits == 0:
                    # The upstream is down (circuit open): leave messages unclaimed for other workers
                    # or the probe, rather than claim them only to put them back with a longer backoff.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=max(self.poll_seconds, 0.2))
                    continue
                limit = self.batch_size if admits is None else min(self.batch_size, admits)
                self.wake.clear()
                batch = await dispatching.claim(
                    self.db,
                    self.clock,
                    limit=limit,
                    lease_seconds=self.lease_seconds,
                    sms=self.connectors.claims_sms,
                    holder=holder_id,
                )
                if batch:
                    self.idle.found()
                    results = await asyncio.gather(*(self._submit(message, holder_id) for message in batch))
                    # At most one batch being recorded: its answers are on their way to the database
                    # while the next batch is claimed and submitted.
                    if recording is not None:
                        await recording
                    recording = asyncio.create_task(self._record(batch, results))
                    continue
                if recording is not None:
                    # Recording may have made messages due (retries, SMS fallbacks): look again after it.
                    await recording
                    recording = None
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self.idle.next())
                if self.wake.is_set():
                    self.idle.found()
        finally:
            if recording is not None:
                await recording

    def _holder_id(self) -> int | Literal[False] | None:
        """The id to claim under (None without a holder), or False when nothing should be claimed now."""
        if self.holder is None:
            return None
        holder_id = self.holder.id
        if holder_id is None or not self.holder.fresh(holder_id, self.call_seconds):
            return False
        return holder_id

    def _may_call(self, holder_id: int | None) -> bool:
        return self.holder is None or self.holder.fresh(holder_id, self.call_seconds)

    async def _record(self, batch: list[OutboundMessage], results: list[dispatching.Outcome]) -> None:
        await self.recorder.record(outcomes=results)
        self.webhooks_wake.set()

    async def _submit(self, message: OutboundMessage, holder_id: int | None) -> dispatching.Outcome:
        connector = self.connectors.pick(message)
        holder = self.holder
        if holder is not None:
            if not holder.fresh(holder_id, self.call_seconds):
                # The claim could be freed and taken over while the call runs: hand it back untried.
                return message, TryLater(error=HOLDER_STALE), connector.name
            # Connectors that queue before writing (SMPP's window) ask again right before the write.
            message = replace(message, may_write=lambda: holder.fresh(holder_id))
        started = time.perf_counter()
        try:
            result = await connector.submit(message)
        except Exception as exc:  # a connector bug must not leave the message claimed until its lease lapses
            log.error(
                "connector_error", message_id=message.message_id, error=type(exc).__name__, exc_info=exc
            )
            upstream_call(connector.name, "submit", "error", time.perf_counter() - started)
            return message, TryLater(error=f"connector error: {type(exc).__name__}"), connector.name
        outcome = _outcome(result)
        if outcome is not None:
            upstream_call(connector.name, "submit", outcome, time.perf_counter() - started)
        return message, result, connector.name

    async def sweep_loop(self, stop: asyncio.Event) -> None:
        try:
            await self._sweep(stop)
        finally:
            await self.sweep_lock.release()

    async def _sweep(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.leading = await self.sweep_lock.held()
            if not self.leading:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.sweep_seconds * 4)
                continue
            # Dead holders first: after a restart in embedded mode this frees the predecessor's
            # claims before anything else waits its turn for the SQLite writer.
            reclaimed = await self._reap()
            if reclaimed:
                log.warning("claims_reclaimed", count=reclaimed)
                self.wake.set()
            busy = await campaigns.tick(self.db, self.clock)
            if busy:
                self.wake.set()
            revoking = self.connectors.revoking
            expired = await dispatching.expire_due(self.db, self.clock, revoking=revoking)
            if revoking:
                expired += await self._revoke(revoking)
            if expired:
                self.webhooks_wake.set()
            if expired:
                self.wake.set()  # fallbacks may be waiting
            if busy or expired or reclaimed:
                self.sweep_idle.found()
            self.sweep_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sweep_wake.wait(), timeout=self._sweep_wait())
            if self.sweep_wake.is_set():
                self.sweep_idle.found()

    def _sweep_wait(self) -> float:
        """The idle wait, cut short to the moment another holder turns dead if it beats no more: a
        killed process's claims are then freed right at the threshold, not up to a wait later."""
        wait = self.sweep_idle.next()
        if self._next_death is not None:
            until = (self._next_death - self.clock.now()).total_seconds() + 0.01
            wait = min(wait, max(until, self.sweep_seconds / 5))
        return wait

    async def _reap(self) -> int:
        """Free the claims of dead holders (at once), then those whose lease ran out (the backstop for
        claims without a holder)."""
        alive = self.holder.ids if self.holder is not None else ()
        reaped = await dispatching.reclaim_dead(
            self.db, self.clock, dead_seconds=self.dead_seconds, alive=alive, all_others=self.exclusive
        )
        self._next_death = reaped.next_death
        if reaped.holders:
            log.warning(
                "claim_holders_reaped",
                holders=reaped.holders,
                messages=reaped.messages,
                revocations=reaped.revocations,
                webhooks=reaped.webhooks,
            )
            if reaped.webhooks:
                self.webhooks_wake.set()
        return reaped.messages + await dispatching.reclaim_lapsed(self.db, self.clock)

    async def _revoke(self, revoking: set[str]) -> int:
        """Withdraw sent messages past their validity from their upstreams, then record the answers."""
        holder_id = self._holder_id()
        if holder_id is False:
            return 0
        claimed = await dispatching.claim_revocations(
            self.db, self.clock, revoking=revoking, lease_seconds=self.lease_seconds, holder=holder_id
        )
        if not claimed:
            return 0

        async def one(item: dispatching.Revocation) -> RevokeResult:
            connector = self.connectors.named(item.upstream)
            if connector is None:
                return Revoked()
            if not self._may_call(holder_id):
                return TryLater(HOLDER_STALE)
            started = time.perf_counter()
            try:
                result = await connector.revoke(item.message)
            except Exception as exc:
                log.error("connector_error", message_id=item.message.message_id, error=type(exc).__name__)
                upstream_call(connector.name, "revoke", "error", time.perf_counter() - started)
                return TryLater(f"connector error: {type(exc).__name__}")
            outcome = _outcome(result)
            if outcome is not None:
                upstream_call(connector.name, "revoke", outcome, time.perf_counter() - started)
            return result

        results = await asyncio.gather(*(one(item) for item in claimed))
        applied = await dispatching.record_revocations(
            self.db, self.clock, list(zip(claimed, results, strict=True))
        )
        if applied.fallbacks:
            self.wake.set()
        return len(claimed)

    async def on_reports(self, reports: Sequence[Report]) -> None:
        applied = await self.recorder.record(reports=reports)
        if applied.changed:
            self.webhooks_wake.set()
        if applied.fallbacks:
            self.wake.set()  # an undelivered RCS produced an SMS fallback to send


_OUTCOMES: dict[type, str] = {
    Accepted: "accepted",
    NotCapable: "not_capable",
    Rejected: "rejected",
    Revoked: "revoked",
    AlreadyDelivered: "already_delivered",
}


def _outcome(result: SubmitResult | RevokeResult) -> str | None:
    """The answer as rcsgate_upstream_request_duration_seconds' outcome; None for a call refused
    before it reached the upstream (its circuit open, the connector stopping)."""
    if isinstance(result, TryLater):
        return None if result.error in _REFUSALS else "try_later"
    return _OUTCOMES.get(type(result), "other")
