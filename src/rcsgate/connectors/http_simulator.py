"""A connector to the simulator service (``rcsgate simulator``) over HTTP: the upstream outside our
process, with real timeouts, 5xx answers and dropped connections (docs/simulator.md).

Submits are POSTed with our message id as the idempotency key; any transient trouble (timeout,
connection error, 5xx, 429) becomes TryLater, which the dispatcher retries with its backoff. A
circuit breaker stops calling an upstream that keeps failing. Reports do not come back through
this object: the service POSTs them to the API's report ingress (api/routers/upstream.py), so
``start`` ignores the sink and any API process may receive them.
"""

from __future__ import annotations

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
from rcsgate.connectors.upstream_calls import UpstreamCalls
from rcsgate.logging_setup import get_logger

log = get_logger("rcsgate.connectors.http")

# Answers are tiny; a larger one is not from the simulator.
_MAX_ANSWER_BYTES: Final = 64 * 1024


class HttpSimulatorConnector:
    name: str = "simulator-http"
    revokes: bool = False

    def __init__(self, *, base_url: str, timeout_seconds: float, breaker: CircuitBreaker) -> None:
        self._url = base_url.rstrip("/") + "/v1/messages"
        self.breaker = breaker
        self.calls = UpstreamCalls(name=self.name, breaker=breaker, timeout_seconds=timeout_seconds)
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
        refused = self.calls.refusal()
        if refused is not None:
            return refused
        async with self.calls.call() as call:
            result, call.alive = await self._call(message)
            return result

    async def _call(self, message: OutboundMessage) -> tuple[SubmitResult, bool]:
        """The result, and whether the upstream showed itself alive (any answer but a 5xx)."""
        try:
            async with self.calls.client.post(
                self._url,
                data=encode_submit(message),
                headers=self._headers,
                timeout=self.calls.timeout,
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

    async def start(self, sink: ReportSink) -> None:
        self.calls.start()

    async def stop(self) -> None:
        await self.calls.stop()


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
