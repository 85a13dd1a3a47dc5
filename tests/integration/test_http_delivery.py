"""Real HTTP round trips against an aiohttp server bound to 127.0.0.1 on an ephemeral port."""

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from rcsgate.webhooks.http_client import WebhookClient
from rcsgate.webhooks.http_delivery import DeliveryResult, make_client, post_webhook
from rcsgate.webhooks.signing import new_webhook_secret, signed_headers, verify

SECRET = new_webhook_secret()
# Non-ASCII and odd spacing: the receiver must get these exact bytes, not a re-serialisation.
BODY = json.dumps(
    {"id": "msg_1", "status": "DELIVERED", "text": "héllo ✓"}, ensure_ascii=False, indent=1
).encode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class Receiver:
    base_url: str
    port: int
    hits: list[Received] = field(default_factory=list)


def _received(request: web.Request, body: bytes) -> Received:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return Received(request.path, dict(request.headers), body, peer[1] if peer else -1)


def _app(receiver: Receiver) -> web.Application:
    def record(status: int, **kwargs: Any) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            receiver.hits.append(_received(request, await request.read()))
            return web.Response(status=status, **kwargs)

        return handler

    async def slow(request: web.Request) -> web.StreamResponse:
        receiver.hits.append(_received(request, await request.read()))
        await asyncio.sleep(3)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/ok", record(200, text="thanks"))
    app.router.add_post("/accepted", record(202))
    app.router.add_post("/big", record(200, body=b"x" * (1024 * 1024)))
    app.router.add_post("/gone", record(410))
    app.router.add_post("/error", record(500))
    app.router.add_post("/busy", record(429))
    app.router.add_post("/redirect", record(302, headers={"Location": "/ok"}))
    app.router.add_post("/slow", slow)
    return app


@asynccontextmanager
async def receiver_server() -> AsyncIterator[Receiver]:
    receiver = Receiver(base_url="", port=0)
    runner = web.AppRunner(_app(receiver), shutdown_timeout=0.2, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        receiver.port = runner.addresses[0][1]
        receiver.base_url = f"http://127.0.0.1:{receiver.port}"
        yield receiver
    finally:
        await runner.cleanup()


def _headers() -> dict[str, str]:
    return signed_headers(secret=SECRET, webhook_id="msg_1", timestamp=datetime.now(UTC), body=BODY)


def _assert_no_secrets(result: DeliveryResult, headers: dict[str, str]) -> None:
    text = repr(result)
    assert SECRET not in text
    assert headers["webhook-signature"] not in text


def run(scenario: Callable[[Receiver, WebhookClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with receiver_server() as receiver, make_client() as session:
            await scenario(receiver, session)

    asyncio.run(main())


def test_200_delivers_exact_bytes_with_valid_signature() -> None:
    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        headers = _headers()
        result = await post_webhook(
            session, url=f"{receiver.base_url}/ok", body=BODY, headers=headers, allow_private=True
        )
        assert result.outcome == "delivered"
        assert result.status_code == 200
        assert result.error is None
        assert result.duration_ms > 0
        _assert_no_secrets(result, headers)
        [hit] = receiver.hits
        assert hit.body == BODY
        assert hit.headers["Content-Type"] == "application/json"
        assert hit.headers["webhook-id"] == "msg_1"
        assert hit.headers["User-Agent"].startswith("rcsgate-webhooks/")
        verify(secret=SECRET, headers=hit.headers, body=hit.body)

    run(scenario)


@pytest.mark.parametrize(
    ("path", "outcome", "status"),
    [
        ("/accepted", "delivered", 202),
        ("/big", "delivered", 200),
        ("/gone", "give_up", 410),
        ("/error", "retry", 500),
        ("/busy", "retry", 429),
        ("/missing", "retry", 404),
        ("/redirect", "retry", 302),
    ],
)
def test_status_classification(path: str, outcome: str, status: int) -> None:
    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        headers = _headers()
        result = await post_webhook(
            session, url=receiver.base_url + path, body=BODY, headers=headers, allow_private=True
        )
        assert (result.outcome, result.status_code) == (outcome, status)
        assert (result.error is None) == (outcome == "delivered")
        if result.error is not None:
            assert result.error == f"HTTP {status}"
        _assert_no_secrets(result, headers)
        # Redirects are not followed: only the original path was requested.
        assert [hit.path for hit in receiver.hits] == ([path] if path != "/missing" else [])

    run(scenario)


def test_slow_receiver_times_out_as_retry() -> None:
    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        started = time.perf_counter()
        result = await post_webhook(
            session,
            url=f"{receiver.base_url}/slow",
            body=BODY,
            headers=_headers(),
            timeout_s=0.2,
            allow_private=True,
        )
        elapsed = time.perf_counter() - started
        assert result.outcome == "retry"
        assert result.status_code is None
        assert result.error is not None
        assert "timed out" in result.error
        assert elapsed < 1.5
        assert len(receiver.hits) == 1

    run(scenario)


def test_connection_refused_is_retry() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    # Nothing listens on free_port any more.

    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        result = await post_webhook(
            session, url=f"http://127.0.0.1:{free_port}/ok", body=BODY, headers=_headers(), allow_private=True
        )
        assert result.outcome == "retry"
        assert result.status_code is None
        assert result.error is not None
        assert "ConnectionRefusedError" in result.error

    run(scenario)


def test_private_destination_refused_without_contacting_receiver() -> None:
    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        for url in (
            f"{receiver.base_url}/ok",
            f"http://127.1:{receiver.port}/ok",
            f"http://localhost:{receiver.port}/ok",
        ):
            result = await post_webhook(session, url=url, body=BODY, headers=_headers(), allow_private=False)
            assert result.outcome == "give_up", url
            assert result.status_code is None
            assert result.error is not None
            assert "public" in result.error
        assert receiver.hits == []

    run(scenario)


def test_malformed_url_gives_up() -> None:
    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        result = await post_webhook(
            session, url="ftp://example.com/", body=BODY, headers=_headers(), allow_private=True
        )
        assert result.outcome == "give_up"
        assert result.error is not None

    run(scenario)


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Make every lookup of rebind.test return the next answer (the last one repeats)."""
    seen: list[str] = []
    real = asyncio.BaseEventLoop.getaddrinfo

    async def getaddrinfo(self: asyncio.AbstractEventLoop, host: Any, port: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return await real(self, host, port, **kwargs)  # type: ignore[arg-type]
        address = answers[min(len(seen), len(answers) - 1)]
        seen.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return seen


def test_dns_rebinding_has_no_second_lookup_to_exploit(monkeypatch: pytest.MonkeyPatch) -> None:
    # A rebinding DNS server answers a public address, then loopback. The client looks the name
    # up once and connects to exactly the address it checked, so the second answer is never used.
    seen = _fake_dns(monkeypatch, ["93.184.216.34", "127.0.0.1"])
    connected: list[str] = []

    async def create_connection(
        self: Any, factory: Any, host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        connected.append(str(host))
        raise ConnectionRefusedError("not really connecting anywhere in a test")

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", create_connection)

    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        result = await post_webhook(
            session,
            url=f"http://rebind.test:{receiver.port}/ok",
            body=BODY,
            headers=_headers(),
            allow_private=False,
        )
        assert result.outcome == "retry"
        assert receiver.hits == []

    run(scenario)
    assert seen == ["93.184.216.34"]
    assert connected == ["93.184.216.34"]


def test_resolved_private_address_refused_at_preflight(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, ["10.1.2.3"])

    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        result = await post_webhook(
            session,
            url=f"http://rebind.test:{receiver.port}/ok",
            body=BODY,
            headers=_headers(),
            allow_private=False,
        )
        assert result.outcome == "give_up"
        assert result.error is not None
        assert "10.1.2.3" in result.error

    run(scenario)


def test_hostname_resolving_to_loopback_is_delivered_when_private_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_dns(monkeypatch, ["127.0.0.1"])

    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        result = await post_webhook(
            session,
            url=f"http://rebind.test:{receiver.port}/ok",
            body=BODY,
            headers=_headers(),
            allow_private=True,
        )
        assert result.outcome == "delivered"
        assert [hit.body for hit in receiver.hits] == [BODY]

    run(scenario)


def test_dns_failure_is_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(self: Any, host: Any, port: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", failing)

    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        result = await post_webhook(
            session, url="https://hooks.example.com/x", body=BODY, headers=_headers(), allow_private=False
        )
        assert result.outcome == "retry"
        assert result.error is not None
        assert "gaierror" in result.error

    run(scenario)


def test_connection_is_reused_after_small_answers_but_not_after_oversized_ones() -> None:
    async def scenario(receiver: Receiver, session: WebhookClient) -> None:
        for path in ("/ok", "/ok", "/big", "/ok"):
            result = await post_webhook(
                session, url=receiver.base_url + path, body=BODY, headers=_headers(), allow_private=True
            )
            assert result.outcome == "delivered"
        ports = [hit.client_port for hit in receiver.hits]
        assert ports[0] == ports[1] == ports[2]  # keep-alive after fully drained small answers
        assert ports[3] != ports[2]  # the 1 MiB answer was not drained, so its connection was dropped

    run(scenario)
