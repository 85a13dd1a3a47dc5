"""The webhook HTTP client against receivers that answer oddly or with hostile intent: raw asyncio
servers on 127.0.0.1 that send exactly the bytes a test chooses."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from rcsgate.webhooks.http_client import WebhookClient
from rcsgate.webhooks.http_delivery import DeliveryResult, make_client, post_webhook

Answer = Callable[[bytes], bytes | None]  # the request's bytes -> what to send back (None: hang up)


@asynccontextmanager
async def raw_server(
    answer: Answer, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[dict[str, list]]:
    """A server answering each request with ``answer(request)``; records requests and connections."""
    seen: dict[str, list] = {"requests": [], "connections": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"].append(writer.get_extra_info("peername"))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                seen["requests"].append(request)
                reply = answer(request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    seen["port"] = [server.sockets[0].getsockname()[1]]
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()


def post(client: WebhookClient, url: str, *, headers: dict[str, str] | None = None) -> asyncio.Future:
    return asyncio.ensure_future(
        post_webhook(
            client,
            url=url,
            body=b'{"x":1}',
            headers=headers or {"content-type": "application/json", "webhook-id": "evt_1"},
            timeout_s=2.0,
            allow_private=True,
        )
    )


def exchange(
    answer: Answer, times: int = 2, **kwargs: object
) -> tuple[list[DeliveryResult], dict[str, list]]:
    async def main() -> tuple[list[DeliveryResult], dict[str, list]]:
        async with raw_server(answer) as seen, make_client() as client:
            url = f"http://127.0.0.1:{seen['port'][0]}/hook?a=1"
            results = [await post(client, url, **kwargs) for _ in range(times)]  # type: ignore[arg-type]
            return results, seen

    return asyncio.run(main())


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_keep_alive_after_a_sized_answer_and_the_request_is_well_formed() -> None:
    results, seen = exchange(lambda _: OK)
    assert [r.outcome for r in results] == ["delivered", "delivered"]
    assert len(seen["connections"]) == 1
    request = seen["requests"][0]
    assert request.startswith(b"POST /hook?a=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{seen['port'][0]}".encode() in request
    assert b"User-Agent: rcsgate-webhooks/" in request
    assert request.endswith(b'\r\n\r\n{"x":1}')


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
    ],
    ids=["chunked", "connection-close", "http-1.0", "two-lengths", "too-large", "extra-bytes"],
)
def test_answers_we_do_not_frame_ourselves_end_the_connection(answer: bytes) -> None:
    results, seen = exchange(lambda _: answer)
    assert [(r.outcome, r.status_code) for r in results] == [("delivered", 200)] * 2
    assert len(seen["connections"]) == 2


def test_interim_answers_are_skipped() -> None:
    results, seen = exchange(lambda _: b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK)
    assert [(r.outcome, r.status_code) for r in results] == [("delivered", 200)] * 2
    assert len(seen["connections"]) == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda _: b"hello there\r\n\r\n", "BadResponseError"),
        (lambda _: b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", "BadResponseError"),
        (lambda _: None, "ReceiverClosedError"),
    ],
    ids=["not-http", "head-too-large", "hang-up"],
)
def test_broken_answers_are_retried(answer: Answer, error: str) -> None:
    results, _ = exchange(answer, times=1)
    [result] = results
    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error is not None and result.error.startswith(error)


def test_a_receiver_that_never_answers_times_out() -> None:
    async def main() -> DeliveryResult:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with make_client() as client:
                return await post_webhook(
                    client,
                    url=f"http://127.0.0.1:{port}/",
                    body=b"{}",
                    headers={},
                    timeout_s=0.2,
                    allow_private=True,
                )
        finally:
            server.close()

    result = asyncio.run(main())
    assert (result.outcome, result.error) == ("retry", "timed out after 0.2s")


def test_header_injection_is_refused_before_sending() -> None:
    results, seen = exchange(lambda _: OK, times=1, headers={"webhook-id": "evt\r\nX-Evil: 1"})
    assert results[0].outcome == "give_up"
    assert seen["requests"] == []


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_verifies_the_receivers_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def main() -> tuple[DeliveryResult, DeliveryResult]:
        async with raw_server(lambda _: OK, ssl_context=server_context) as seen:
            url = f"https://127.0.0.1:{seen['port'][0]}/hook"
            async with make_client() as client:  # the system's trust store: not this certificate
                refused = await post(client, url)
            trusting = ssl.create_default_context(cafile=str(cert))
            async with WebhookClient(user_agent="test", ssl_context=trusting) as client:
                accepted = await post(client, url)
            return refused, accepted

    refused, accepted = asyncio.run(main())
    assert refused.outcome == "retry"
    assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert (accepted.outcome, accepted.status_code) == ("delivered", 200)
