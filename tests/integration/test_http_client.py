"""The webhook HTTP client against receivers that answer oddly or with hostile intent: raw asyncio
servers on 127.0.0.1 that send exactly the bytes a test chooses."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from yarl import URL

from raw_http_server import Answer, raw_server
from rcsgate.webhooks.http_client import BadResponseError, WebhookClient, destination
from rcsgate.webhooks.http_delivery import DeliveryResult, make_client, post_webhook
from rcsgate.webhooks.url_policy import CallbackUrlError


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


# ---------------------------------------------------------------------- kept bodies (upstream APIs)


def call(
    answer: Answer, requests: list[tuple[str, bytes | None]], **client_options: object
) -> tuple[list[tuple[int, bytes]], dict[str, list]]:
    """``requests`` (method, body) through a client that keeps bodies; (status, body) of each."""

    async def main() -> tuple[list[tuple[int, bytes]], dict[str, list]]:
        async with (
            raw_server(answer) as seen,
            WebhookClient(user_agent="test", keep_bodies=True, **client_options) as client,  # type: ignore[arg-type]
        ):
            dest = destination(URL(f"http://127.0.0.1:{seen['port'][0]}/v1/x?a=1"))
            results = [
                await client.request(
                    method, dest, body=body, headers={"authorization": "Bearer t"}, checked=False
                )
                for method, body in requests
            ]
            return results, seen

    return asyncio.run(main())


ERROR_JSON = b'{"error":{"code":400,"message":"bad thing","status":"INVALID_ARGUMENT"}}'


def test_kept_bodies_come_back_and_the_connection_is_reused() -> None:
    sized = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(ERROR_JSON) + ERROR_JSON
    results, seen = call(lambda _: sized, [("POST", b"{}"), ("DELETE", None)])
    assert results == [(400, ERROR_JSON)] * 2
    assert len(seen["connections"]) == 1
    post_request, delete_request = seen["requests"]
    assert (
        post_request.startswith(b"POST /v1/x?a=1 HTTP/1.1\r\n") and b"Content-Length: 2\r\n" in post_request
    )
    assert delete_request.startswith(b"DELETE /v1/x?a=1 HTTP/1.1\r\n")
    assert b"content-length" not in delete_request.lower()  # no body, no length
    assert b"authorization: Bearer t\r\n" in delete_request


def test_chunked_bodies_are_read_and_the_connection_is_reused() -> None:
    chunked = (
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"10;ext=1\r\n"
        + ERROR_JSON[:16]
        + b"\r\n"
        + b"%x\r\n" % (len(ERROR_JSON) - 16)
        + ERROR_JSON[16:]
        + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    results, seen = call(lambda _: chunked, [("POST", b"{}"), ("POST", b"{}")])
    assert results == [(400, ERROR_JSON)] * 2
    assert len(seen["connections"]) == 1


def test_chunks_split_across_reads_are_put_together() -> None:
    async def main() -> tuple[int, bytes]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            for piece in (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5",
                b"\r\nhel",
                b"lo\r",
                b"\n0\r\n\r",
                b"\n",
            ):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
            await asyncio.sleep(1)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with WebhookClient(user_agent="test", keep_bodies=True) as client:
                dest = destination(URL(f"http://127.0.0.1:{port}/"))
                return await client.request("POST", dest, body=b"", headers={}, checked=False)
        finally:
            server.close()

    assert asyncio.run(main()) == (200, b"hello")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n" + b"x" * 1024,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ],
    ids=["chunked-too-large", "sized-too-large", "not-only-chunked", "chunked-and-length"],
)
def test_bodies_beyond_the_limit_or_framing_come_back_empty_and_end_the_connection(answer: bytes) -> None:
    results, seen = call(lambda _: answer, [("POST", b"{}")] * 2, max_body_bytes=512)
    assert results == [(200, b"")] * 2
    assert len(seen["connections"]) == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000,
    ],
    ids=["bad-size", "no-crlf-after-data", "endless-size-line"],
)
def test_broken_chunked_bodies_are_bad_answers(answer: bytes) -> None:
    async def main() -> None:
        async with (
            raw_server(lambda _: answer) as seen,
            WebhookClient(user_agent="t", keep_bodies=True) as client,
        ):
            dest = destination(URL(f"http://127.0.0.1:{seen['port'][0]}/"))
            await client.request("POST", dest, body=b"{}", headers={}, checked=False)

    with pytest.raises(BadResponseError):
        asyncio.run(main())


def test_only_unchecked_requests_skip_the_callback_url_policy() -> None:
    async def main() -> tuple[Exception | None, int]:
        async with (
            raw_server(lambda _: OK) as seen,
            WebhookClient(user_agent="t", keep_bodies=True) as client,
        ):
            dest = destination(URL(f"http://127.0.0.1:{seen['port'][0]}/"))
            refused: Exception | None = None
            try:
                await client.request("POST", dest, body=b"", headers={}, allow_private=False)
            except CallbackUrlError as exc:
                refused = exc
            status, _ = await client.request("POST", dest, body=b"", headers={}, checked=False)
            return refused, status

    refused, status = asyncio.run(main())
    assert refused is not None and status == 200


def test_unknown_methods_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="unsupported method"):
        call(lambda _: OK, [("CONNECT", None)])
