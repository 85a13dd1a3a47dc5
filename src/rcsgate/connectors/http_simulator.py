"""A connector to the simulator service (``rcsgate simulator``) over HTTP: the upstream outside our
process, with real timeouts, 5xx answers and dropped connections (docs/simulator.md).

Submits are POSTed with our message id as the idempotency key; any transient trouble (timeout,
connection error, 5xx, 429) becomes TryLater, which the dispatcher retries with its backoff. A
circuit breaker stops calling an upstream that keeps failing. Reports do not come back through
this object: the service POSTs them to the API's report ingress (api/routers/upstream.py), so
``start`` ignores the sink and any API process may receive them.

aiohttp rather than httpx: it is the runtime dependency chosen for outbound traffic (DESIGN.md),
httpx is only a test dependency.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING, Final

import aiohttp

from rcsgate.connectors.base import (
    Connector,
    OutboundMessage,
    Rejected,
    ReportSink,
    Revoked,
    RevokeResult,
    SubmitResult,
    TryLater,
)
from rcsgate.connectors.circuit_breaker import CircuitBreaker
from rcsgate.connectors.simulator_wire import CLIENT_HEADER, decode_answer, encode_submit
from rcsgate.logging_setup import get_logger

log = get_logger("rcsgate.connectors.http")

CIRCUIT_OPEN: Final = "circuit open"
# At least the dispatcher's claim batch (200 concurrent submits), so no submit waits for a free
# connection and then times out without having been sent.
_CONNECTIONS: Final = 256
# Answers are tiny; a larger one is not from the simulator.
_MAX_ANSWER_BYTES: Final = 64 * 1024
# How long stop() waits for submits in flight, so a graceful stop does not turn answers that are
# already on their way into resubmissions.
_STOP_GRACE_SECONDS: Final = 5.0


class HttpSimulatorConnector:
    name: str = "simulator-http"
    revokes: bool = False

    def __init__(self, *, base_url: str, timeout_seconds: float, breaker: CircuitBreaker) -> None:
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.breaker = breaker
        self._session: aiohttp.ClientSession | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._headers = {
            "content-type": "application/json",
            CLIENT_HEADER: f"{socket.gethostname()}:{os.getpid()}",
        }

    def admits(self) -> int | None:
        return self.breaker.admits()

    async def revoke(self, message: OutboundMessage) -> RevokeResult:
        # Never called (revokes is False): an expired message is simply given up on.
        return Revoked()

    async def submit(self, message: OutboundMessage) -> SubmitResult:
        if self._stopping:
            return TryLater("connector stopping")
        if not self.breaker.allow():
            return TryLater(CIRCUIT_OPEN)
        alive = False
        self._in_flight += 1
        self._idle.clear()
        try:
            result, alive = await self._call(message)
            return result
        finally:
            # A cancelled call counts as a failure: if it was the half-open probe, the circuit must
            # not wait for an answer that will never be recorded.
            (self.breaker.success if alive else self.breaker.failure)()
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _call(self, message: OutboundMessage) -> tuple[SubmitResult, bool]:
        """The result, and whether the upstream showed itself alive (any answer but a 5xx)."""
        try:
            async with self._client().post(
                self._url,
                data=encode_submit(message),
                headers=self._headers,
                timeout=self._timeout,
            ) as response:
                status = response.status
                body = await response.content.read(_MAX_ANSWER_BYTES)
        except TimeoutError:
            return TryLater("upstream timeout"), False
        except (aiohttp.ClientError, OSError) as exc:
            log.debug("upstream_connection_error", message_id=message.message_id, error=type(exc).__name__)
            return TryLater(f"upstream connection error: {type(exc).__name__}"), False
        if status >= 500:
            return TryLater(f"upstream answered {status}{_detail(body)}"), False
        if status == 429:
            return TryLater("upstream throttled us"), True
        if status != 200:
            # The upstream refuses this request as such; sending it again would not change that.
            return Rejected(f"upstream answered {status}"), True
        try:
            return decode_answer(body), True
        except ValueError as exc:
            return TryLater(f"malformed upstream answer: {exc}"[:200]), False

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop: the send loop may submit before start().
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=_CONNECTIONS), raise_for_status=False
            )
        return self._session

    async def start(self, sink: ReportSink) -> None:
        self._stopping = False

    async def stop(self) -> None:
        self._stopping = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=_STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("upstream_submits_abandoned", in_flight=self._in_flight)
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _detail(body: bytes) -> str:
    """The error an upstream gave with its 5xx (the simulator says e.g. "upstream unreachable")."""
    try:
        result = decode_answer(body)
    except ValueError:
        return ""
    return f": {result.error}" if isinstance(result, TryLater) else ""


if TYPE_CHECKING:

    def _conforms(connector: HttpSimulatorConnector) -> Connector:
        return connector
