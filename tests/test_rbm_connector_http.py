"""The RBM connector's own HTTP exchange (the webhook client with kept bodies) against a raw local
server that answers exactly as a test says: Google's error message kept from a 400 (sized or
chunked), one retry with a fresh token after a 401, timeouts and resets as TryLater, kept
connections, and the request as Google expects it (path, query, bearer token, JSON body)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from raw_http_server import Answer, raw_server
from rcsgate.clock import ManualClock
from rcsgate.connectors.base import Accepted, AlreadyDelivered, OutboundMessage, Rejected, Revoked, TryLater
from rcsgate.connectors.circuit_breaker import CircuitBreaker
from rcsgate.connectors.rbm.connector import RbmConnector
from rcsgate.connectors.rbm.fake_auth import make_service_account_key
from rcsgate.connectors.rbm.settings import RbmSettings

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_KEY = make_service_account_key("http://127.0.0.1:9/token")


class FakeTokens:
    """Hands out t1; after a 401 on the current token, t2 (and so on)."""

    def __init__(self) -> None:
        self.current = "t1"
        self.refreshes = 0

    async def token(self, *, stale: str | None = None) -> str:
        if stale is not None and stale == self.current:
            self.refreshes += 1
            self.current = f"t{self.refreshes + 1}"
        return self.current


def sized(status: str, body: bytes = b"{}") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(),
        len(body),
        body,
    )


def chunked(status: str, body: bytes) -> bytes:
    half = len(body) // 2
    return b"HTTP/1.1 %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        status.encode(),
        half,
        body[:half],
        len(body) - half,
        body[half:],
    )


def google_error(code: int, message: str) -> bytes:
    return b'{"error":{"code":%d,"message":"%s","status":"X"}}' % (code, message.encode())


def exchange(
    answer: Answer, calls: list[str], *, timeout: float = 2.0
) -> tuple[list[object], dict[str, list], FakeTokens]:
    """``calls`` ("submit" or "revoke") through a connector whose API is the raw server."""

    async def main() -> tuple[list[object], dict[str, list], FakeTokens]:
        async with raw_server(answer) as seen:
            clock = ManualClock(START)
            settings = RbmSettings(
                agent_id="agent@rbm.goog",
                api_url=f"http://127.0.0.1:{seen['port'][0]}",
                service_account=_KEY,
                webhook_token="TOKENTOKENTOKEN",
                salt=12345,
            )
            connector = RbmConnector(
                name="rbm",
                settings=settings,
                clock=clock,
                timeout_seconds=timeout,
                breaker=CircuitBreaker(name="rbm"),
            )
            tokens = FakeTokens()
            connector.tokens = tokens  # type: ignore[assignment]
            message = OutboundMessage(
                message_id=42,
                channel="rcs",
                phone="447900000001",
                sender="agent",
                content={"text": "hello"},
                expires_at=START + timedelta(hours=1),
            )
            results: list[object] = []
            for what in calls:
                call = connector.submit if what == "submit" else connector.revoke
                results.append(await call(message))
            await connector.stop()
            return results, seen, tokens

    return asyncio.run(main())


def test_a_submit_is_sent_as_google_expects_and_the_connection_kept() -> None:
    results, seen, _ = exchange(lambda _: sized("200 OK"), ["submit", "submit", "revoke"])
    assert [type(r) for r in results] == [Accepted, Accepted, Revoked]
    assert len(seen["connections"]) == 1
    post, _, delete = seen["requests"]
    line = post.split(b"\r\n", 1)[0]
    assert line.startswith(b"POST /v1/phones/%2B447900000001/agentMessages?messageId=")
    assert line.endswith(b"&agentId=agent@rbm.goog HTTP/1.1")
    assert b"authorization: Bearer t1\r\n" in post and b"content-type: application/json\r\n" in post
    assert b'"text":"hello"' in post.split(b"\r\n\r\n", 1)[1]
    assert delete.startswith(b"DELETE /v1/phones/%2B447900000001/agentMessages/")


@pytest.mark.parametrize("framing", [sized, chunked], ids=["sized", "chunked"])
def test_googles_message_is_kept_from_a_400(framing: Callable[[str, bytes], bytes]) -> None:
    answer = framing("400 Bad Request", google_error(400, "Invalid rich card"))
    results, seen, _ = exchange(lambda _: answer, ["submit", "submit"])
    assert all(isinstance(r, Rejected) and r.code == "invalid_content" for r in results)
    assert results[0].reason == "Google refused the message: Invalid rich card"  # type: ignore[attr-defined]
    assert len(seen["connections"]) == 1


def test_a_401_is_tried_once_more_with_a_fresh_token() -> None:
    def answer(request: bytes) -> bytes:
        if b"Bearer t1\r\n" in request:
            return sized("401 Unauthorized", google_error(401, "expired"))
        return sized("200 OK")

    results, seen, tokens = exchange(answer, ["submit"])
    assert isinstance(results[0], Accepted)
    assert tokens.refreshes == 1
    assert [b"Bearer t1" in r for r in seen["requests"]] == [True, False]


def test_a_key_refused_twice_is_a_transient_failure() -> None:
    results, seen, tokens = exchange(lambda _: sized("401 Unauthorized", google_error(401, "no")), ["submit"])
    assert isinstance(results[0], TryLater) and results[0].error.startswith("unauthorized")
    assert tokens.refreshes == 1 and len(seen["requests"]) == 2


def test_answers_map_as_documented() -> None:
    cases = {
        "404 Not Found": "NotCapable",
        "403 Forbidden": "Rejected",
        "409 Conflict": "Accepted",
        "429 Too Many Requests": "TryLater",
        "503 Service Unavailable": "TryLater",
    }
    for status, kind in cases.items():
        results, _, _ = exchange(lambda _, s=status: sized(s, google_error(1, "x")), ["submit"])  # type: ignore[misc]
        assert type(results[0]).__name__ == kind, status
    results, _, _ = exchange(lambda _: sized("404 Not Found"), ["revoke"])
    assert isinstance(results[0], AlreadyDelivered)


def test_no_answer_in_time_and_a_reset_are_transient() -> None:
    results, _, _ = exchange(lambda _: b"", ["submit"], timeout=0.3)
    assert results == [TryLater("Google timeout")]
    results, _, _ = exchange(lambda _: None, ["submit"])
    assert isinstance(results[0], TryLater) and results[0].error.startswith("connection error")
