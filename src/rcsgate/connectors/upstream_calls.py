"""What the connectors that call their upstream over HTTP share: one aiohttp session (created on first
use, inside the running loop: the send loop may submit before ``start``), the calls in flight
(counted, so that ``stop`` waits for answers already on their way instead of turning them into
resubmissions), and the circuit breaker every call's outcome feeds.

aiohttp rather than httpx: it is the runtime dependency chosen for outbound traffic (DESIGN.md).
The RBM connector calls through ``http`` instead, the webhook sender's lean HTTP/1.1 client
(webhooks/http_client.py): a submit is one small request, and aiohttp's general machinery cost
~8-10 % of a worker's CPU on the RBM path (py-spy, 2026-12-05).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import aiohttp

from rcsgate import __version__
from rcsgate.connectors.base import TryLater
from rcsgate.connectors.circuit_breaker import CircuitBreaker
from rcsgate.deadlines import Deadlines
from rcsgate.logging_setup import get_logger
from rcsgate.webhooks.http_client import WebhookClient

log = get_logger("rcsgate.connectors")

CIRCUIT_OPEN: Final = "circuit open"
STOPPING: Final = "connector stopping"
# At least the dispatcher's claim batch (200 concurrent submits), so no submit waits for a free
# connection and then times out without having been sent.
CONNECTIONS: Final = 256
# How long stop() waits for calls in flight.
STOP_GRACE_SECONDS: Final = 5.0
# The largest answer body ``http`` reads (an error's message); a larger one comes back empty.
MAX_ANSWER_BYTES: Final = 256 * 1024


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
        self.timeout_seconds = timeout_seconds
        # Each call's timeout, for callers that time calls out themselves (see deadlines.py).
        self.deadlines = Deadlines()
        self._session: aiohttp.ClientSession | None = None
        self._http: WebhookClient | None = None
        # ``http`` has no pool limit of its own: at most CONNECTIONS requests at once, as aiohttp's.
        self.slots = asyncio.Semaphore(CONNECTIONS)
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

    @property
    def http(self) -> WebhookClient:
        """The lean client: one kept connection per request in flight, bodies read (up to
        MAX_ANSWER_BYTES), certificates verified against the system's trust store."""
        if self._http is None:
            self._http = WebhookClient(
                user_agent=f"rcsgate/{__version__}",
                max_idle_per_destination=CONNECTIONS,
                keep_bodies=True,
                max_body_bytes=MAX_ANSWER_BYTES,
            )
        return self._http

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
        http, self._http = self._http, None
        if http is not None:
            await http.close()
