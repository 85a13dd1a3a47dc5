"""Liveness another process can check: this process's claim holder and its beat.

Every process that claims messages or webhooks registers one row in ``claim_holders`` and beats it
(one small UPDATE) every ``beat_seconds``; its claims carry the row's id. The sweep leader takes a
holder whose beat is older than ``dead_seconds`` (by its clock) for dead, frees its claims and
deletes its row (services/dispatching.reclaim_dead). A dead process's claims are back in work after
``dead_seconds`` and a sweep, instead of after their whole leases.

The other half of the bargain: a living holder never acts on a claim once the reaper could think it
dead. Before each upstream call or webhook POST it asks ``fresh(claim's holder id, the call's
timeout)``: its last committed beat — timed from before that beat's transaction began, on the
monotonic clock, so the beat's own wall time is no earlier — must be younger than
``dead_seconds - timeout - margin``. Then the call ends (answered or timed out) before the reaper
can free the claim. When beats fail (the database is away, the loop starved), calls stop within a
second or two and the claims are handed back or left to the reaper. The margin covers the clock
difference between machines and the reaper's own statement.

A beat that finds its row gone means the reaper has already freed this process's claims: the holder
registers anew, and claims made under the old id are no longer fresh, whatever the new beats say.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable

from rcsgate.clock import Clock
from rcsgate.logging_setup import get_logger
from rcsgate.services import liveness
from rcsgate.store.db import Database

log = get_logger("rcsgate.liveness")

BEAT_SECONDS = 1.0
MARGIN_SECONDS = 1.0
# The error a call refused for a stale holder is recorded with (a refusal: no upstream was called).
HOLDER_STALE = "claim holder out of touch with the database"


def process_label(role: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()} {role}"


class ClaimHolder:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        dead_seconds: float,
        label: str,
        beat_seconds: float = BEAT_SECONDS,
        margin_seconds: float = MARGIN_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.clock = clock
        self.dead_seconds = dead_seconds
        self.label = label
        self.beat_seconds = beat_seconds
        self.margin_seconds = margin_seconds
        self.monotonic = monotonic
        # The current registration; None while (re-)registering.
        self.id: int | None = None
        # Every id this process registered: outcomes of claims made under any of them are its own.
        self.ids: set[int] = set()
        # Monotonic time from before the last committed beat (or the registration) began.
        self._beat_started: float | None = None
        self._failing = False
        self.ready = asyncio.Event()

    def fresh(self, holder_id: int | None, timeout: float = 0.0) -> bool:
        """Whether a call of at most ``timeout`` seconds on a claim made under ``holder_id`` ends before
        the reaper could take this holder for dead."""
        if holder_id is None or holder_id != self.id or self._beat_started is None:
            return False
        age = self.monotonic() - self._beat_started
        return age < self.dead_seconds - timeout - self.margin_seconds

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = self.monotonic()
            await self._once(started)
            pause = max(0.0, started + self.beat_seconds - self.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)

    async def _once(self, started: float) -> None:
        try:
            if self.id is None:
                self.id = await liveness.register(self.db, self.clock, label=self.label, on_id=self.ids)
                log.info("claim_holder_registered", holder_id=self.id)
            elif not await liveness.beat(self.db, self.clock, self.id):
                log.warning("claim_holder_reaped", holder_id=self.id)
                self.id = None
                self._beat_started = None
                self.ready.clear()
                return
        except Exception as exc:
            # Calls stop by themselves as the last beat ages (fresh); say so once per episode.
            if not self._failing:
                log.error("claim_holder_beat_failed", holder_id=self.id, error=type(exc).__name__)
            self._failing = True
            return
        if self._failing:
            log.info("claim_holder_beating_again", holder_id=self.id)
            self._failing = False
        self._beat_started = started
        self.ready.set()
