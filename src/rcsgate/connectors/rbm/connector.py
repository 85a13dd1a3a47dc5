"""The RBM connector: sends agent messages to Google's RBM API (or the local RBM) and withdraws
those not delivered in time. Events come back through the API's ingress (api/routers/upstream.py,
``connectors/rbm/ingress.py``), so ``start`` has no report sink to feed.

Answers (docs/connectors/rbm.md): 200 → sent; 409 → sent (Google does not document its answer to
a repeated messageId; another Google API answers 409, so it counts as the duplicate it is);
404 → the number cannot get RCS from this agent (not an RCS user, or the agent is not launched on
the user's carrier): undelivered now, SMS alternative now; 403 → the agent is not launched and the
number is not a tester: failed; 400 → failed with Google's message; 401 → a new token and one more
try; 429, 5xx, timeouts and resets → retried with backoff through the circuit breaker.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from yarl import URL

from rcsgate.clock import Clock
from rcsgate.connectors.base import (
    Accepted,
    AlreadyDelivered,
    Connector,
    NotCapable,
    OutboundMessage,
    Rejected,
    ReportSink,
    Revoked,
    RevokeResult,
    SubmitResult,
    TryLater,
)
from rcsgate.connectors.circuit_breaker import CircuitBreaker
from rcsgate.connectors.rbm.content import agent_message
from rcsgate.connectors.rbm.protocol import message_uuid
from rcsgate.connectors.rbm.settings import RbmSettings
from rcsgate.connectors.rbm.tokens import ServiceAccountTokens, TokenError
from rcsgate.connectors.upstream_calls import UpstreamCalls
from rcsgate.logging_setup import get_logger
from rcsgate.webhooks.http_client import BadResponseError, destination

log = get_logger("rcsgate.connectors.rbm")


class RbmConnector:
    revokes: bool = True

    def __init__(
        self,
        *,
        name: str,
        settings: RbmSettings,
        clock: Clock,
        timeout_seconds: float,
        breaker: CircuitBreaker,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.breaker = breaker
        self.tokens = ServiceAccountTokens(settings.service_account, timeout_seconds=timeout_seconds)
        self.calls = UpstreamCalls(name=name, breaker=breaker, timeout_seconds=timeout_seconds)
        # Where every call goes (each with its own path); settings checked the URL when saved.
        self._api = destination(URL(settings.api_url))

    def admits(self) -> int | None:
        return self.breaker.admits()

    def _url(self, phone: str, suffix: str = "") -> URL:
        # The + of the E.164 number is part of the path segment, percent-encoded as Google's clients do.
        return URL(f"{self.settings.api_url}/v1/phones/%2B{phone}/agentMessages{suffix}", encoded=True)

    async def submit(self, message: OutboundMessage) -> SubmitResult:
        ttl = math.ceil((message.expires_at - self.clock.now()).total_seconds())
        if ttl <= 0:
            return TryLater("validity ended before the submit")
        body = agent_message(message.message_id, message.content, ttl_seconds=ttl)
        message_id = message_uuid(self.settings.salt, message.message_id)
        url = self._url(message.phone).with_query(messageId=message_id, agentId=self.settings.agent_id)
        answer = await self._call("POST", url, json.dumps(body, separators=(",", ":")).encode())
        if isinstance(answer, TryLater):
            return answer
        status, error = answer
        if status in (200, 409):
            return Accepted(upstream_id=message_id)
        if status == 404:
            return NotCapable(reason="not_rcs_user")
        if status == 403:
            return Rejected(
                f"agent not launched and the number is not a tester: {error}"[:200], code="agent_not_launched"
            )
        if status == 400:
            return Rejected(f"Google refused the message: {error}"[:200], code="invalid_content")
        return Rejected(f"Google answered {status}: {error}"[:200])

    async def revoke(self, message: OutboundMessage) -> RevokeResult:
        message_id = message_uuid(self.settings.salt, message.message_id)
        url = self._url(message.phone, f"/{message_id}").with_query(agentId=self.settings.agent_id)
        answer = await self._call("DELETE", url, None)
        if isinstance(answer, TryLater):
            return answer
        status, error = answer
        if status == 200:
            return Revoked()
        if status == 404:
            return AlreadyDelivered()
        return TryLater(f"revoke answered {status}: {error}"[:200])

    async def _call(self, method: str, url: URL, body: bytes | None) -> tuple[int, str] | TryLater:
        """The answer's status and Google's error message, or TryLater for transient trouble (which
        the circuit breaker counts)."""
        refused = self.calls.refusal()
        if refused is not None:
            return refused
        async with self.calls.call() as call:
            stale: str | None = None
            for _ in range(2):
                try:
                    token = await self.tokens.token(stale=stale)
                except TokenError as exc:
                    return TryLater(str(exc)[:200])
                answer = await self._request(method, url, body, token)
                if isinstance(answer, TryLater):
                    return answer
                status, error = answer
                if status == 401 and stale is None:
                    stale = token  # refresh once: the token may have been revoked early
                    continue
                if status == 401:
                    # A key Google keeps refusing: like an outage, retried and breaker-counted.
                    return TryLater(f"unauthorized: {error}"[:200])
                call.alive = status < 500
                if status == 429:
                    return TryLater("throttled by Google (429)")
                if status >= 500:
                    return TryLater(f"Google answered {status}: {error}"[:200])
                return status, error
            return TryLater("unauthorized")

    async def _request(
        self, method: str, url: URL, body: bytes | None, token: str
    ) -> tuple[int, str] | TryLater:
        headers = {"authorization": f"Bearer {token}"}
        if body is not None:
            headers["content-type"] = "application/json"
        calls = self.calls
        try:
            # The timeout covers the wait for a slot, the connection (TLS verified), and the answer.
            async with calls.deadlines.limit(calls.timeout_seconds), calls.slots:
                # The operator's API URL, not a customer's: any address it resolves to is called.
                status, raw = await calls.http.request(
                    method, self._api.at(url.raw_path_qs), body=body, headers=headers, checked=False
                )
        except TimeoutError:
            return TryLater("Google timeout")
        except (OSError, BadResponseError, ValueError) as exc:
            return TryLater(f"connection error: {type(exc).__name__}")
        return status, _error_message(raw) if status != 200 else ""

    async def start(self, sink: ReportSink) -> None:
        self.calls.start()

    async def stop(self) -> None:
        await self.calls.stop()


def _error_message(raw: bytes) -> str:
    """Google's ``{"error": {"message": ...}}``, or the start of whatever else came back."""
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", "replace")
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
        return str(error.get("message") or error.get("status") or "")[:200]
    return ""


if TYPE_CHECKING:

    def _conforms(connector: RbmConnector) -> Connector:
        return connector
