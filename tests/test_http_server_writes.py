"""The API's HTTP server writes what one turn of the event loop produced in one go
(api/http_server._OneWritePerTurn): every answer still arrives whole, in order, and before a close,
whether it is pipelined, streamed in parts or the connection's last."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from conftest import ServerThread


async def echo(request: Request) -> Response:
    return PlainTextResponse(f"got {request.query_params.get('n', '')}")


async def parts(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"part{n};".encode()
            await asyncio.sleep(0.01)  # each part in a turn of its own

    return StreamingResponse(chunks(), media_type="text/plain")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    app = Starlette(routes=[Route("/echo", echo), Route("/parts", parts)])
    with ServerThread(app) as server:
        yield server.port


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_pipelined_requests_are_answered_whole_and_in_order(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /echo?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = _read_all(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.index(b"got 1") < data.index(b"got 2") < data.index(b"got 3")
    assert data.endswith(b"got 3")


def test_the_last_answer_before_a_close_is_not_lost(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /echo?n=last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = _read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in head.lower()
    assert body == b"got last"


def test_a_streamed_answer_arrives_in_full(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /parts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = _read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    decoded = b"".join(body.split(b"\r\n")[1::2])  # chunk sizes and data alternate
    assert decoded == b"part0;part1;part2;"


def test_a_bad_request_is_answered_and_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 400 ")


def test_an_answer_on_a_kept_connection_arrives_without_waiting_for_a_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        for n in (1, 2):
            sock.sendall(f"GET /echo?n={n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while not data.endswith(f"got {n}".encode()):
                chunk = sock.recv(65536)  # a held write never sent: TimeoutError
                assert chunk, "the server closed a kept connection"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 OK")
