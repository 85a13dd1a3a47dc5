"""What the connectors that call their upstream over HTTP share: one aiohttp session (created on first
use, inside the running loop: the send loop may submit before ``start``), the calls in flight
(counted, so that ``stop`` waits for answers already on their way instead of turning them into
resubmissions), and the circuit breaker every call's outcome feeds.

aiohttp rather than httpx: it is the runtime dependency chosen for outbound traffic (DESIGN.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import aiohttp

from rcsgate.connectors.base import TryLater
from rcsgate.connectors.circuit_breaker import CircuitBreaker
from rcsgate.logging_setup import get_logger

log = get_logger("rcsgate.connectors")

CIRCUIT_OPEN: Final = "circuit open"
STOPPING: Final = "connector stopping"
# At least the dispatcher's claim batch (200 concurrent submits), so no submit waits for a free
# connection and then times out without having been sent.
CONNECTIONS: Final = 256
# How long stop() waits for calls in flight.
STOP_GRACE_SECONDS: Final = 5.0


@dataclass(slots=True)
class Call:
    """One call; set ``alive`` once the upstream showed itself alive (the breaker counts the rest,
    a cancelled call included, as failures: a half-open probe must not wait for an answer that will
    never be recorded)."""

    alive: bool = False


class UpstreamCalls:
    def __init__(self, *, name: str, breaker: CircuitBreaker, timeout_seconds: float) -> None:
        self.name = name
        self.breaker = breaker
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS), raise_for_status=False
            )
        return self._session

    def refusal(self) -> TryLater | None:
        """Why no call may go now (stopping, or the circuit open), or None."""
        if self._stopping:
            return TryLater(STOPPING)
        if not self.breaker.allow():
            return TryLater(CIRCUIT_OPEN)
        return None

    @asynccontextmanager
    async def call(self) -> AsyncIterator[Call]:
        call = Call()
        self._in_flight += 1
        self._idle.clear()
        try:
            yield call
        finally:
            (self.breaker.success if call.alive else self.breaker.failure)()
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def start(self) -> None:
        self._stopping = False

    async def stop(self) -> None:
        self._stopping = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("upstream_submits_abandoned", connector=self.name, in_flight=self._in_flight)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
