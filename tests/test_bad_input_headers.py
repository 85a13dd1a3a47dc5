"""Request heads (request line and headers) have a size and a count limit, enforced by the HTTP server
before anything reads them: one 64 MB header on /healthz was read whole (the process grew by 80 MB),
no credentials needed.

The server runs as it does in production: a real process running uvicorn with
``rcsgate.api.http_server.server_options()``, spoken to over raw sockets. The CLI's own processes
(`rcsgate serve`, `rcsgate api`) must start uvicorn with the same options: the last test holds
`rcsgate serve` to it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import JWT_SECRET, LiveServer
from rcsgate.api.http_server import MAX_HEAD_BYTES, MAX_HEADERS

pytestmark = pytest.mark.slow

RCSGATE = str(Path(sys.executable).parent / "rcsgate")
TOO_LARGE = b'{"message": "Request header fields too large.", "errors": {}}'
SERVER = """
import sys

import uvicorn

from rcsgate.api.app import create_app
from rcsgate.api.http_server import server_options

uvicorn.run(
    create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False,
    **server_options(),
)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("server did not start:\n" + self.log.read_text())

    def memory_kb(self, field: str) -> int:
        """VmRSS (now) or VmHWM (the most it ever held) of the server process."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(field)

    def exchange(self, data: bytes, *, timeout: float = 10) -> bytes:
        """Send ``data`` at once, then read until the server closes (or resets) the connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(data)
            return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT)


@pytest.fixture
def process_env(tmp_path: Path, sqlite_template: Path) -> dict[str, str]:
    db = tmp_path / "var" / "rcsgate.db"
    db.parent.mkdir()
    shutil.copy(sqlite_template, db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env.update(
        RCSGATE_DATABASE_URL=f"sqlite:///{db}",
        RCSGATE_VAR_DIR=str(tmp_path / "var"),
        RCSGATE_JWT_SECRET=JWT_SECRET,
        RCSGATE_LOG_LEVEL="WARNING",
    )
    return env


@pytest.fixture
def process(process_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / "server.log"
    proc = start(process_env, log, sys.executable, "-c", SERVER, str(port))
    srv = Server(proc, port, log)
    try:
        srv.wait_ready()
        yield srv
    finally:
        proc.terminate()
        proc.wait(30)


def request(head_lines: list[bytes], target: bytes = b"/healthz") -> bytes:
    return b"\r\n".join([b"GET " + target + b" HTTP/1.1", b"Host: test", *head_lines]) + b"\r\n\r\n"


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def assert_refused(answer: bytes) -> None:
    assert status_of(answer) == 431, answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower() and b"connection: close" in head.lower()
    assert body == TOO_LARGE


def test_a_64_mb_header_is_refused_before_it_is_read(process: Server) -> None:
    for _ in range(20):  # warm up, so that the baseline includes what any request costs
        assert status_of(process.exchange(request([b"Connection: close"]))) == 200
    peak_before = process.memory_kb("VmHWM")
    chunk = b"a" * (256 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: ")
            while sent < 64 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")  # a server that read it all answers it now
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(sock)
    # Refused after the first reads: what was sent beyond them sat in socket buffers (a few MB).
    assert sent < 32 * 1024 * 1024, f"the server read {sent} bytes of one header"
    if answer:  # the answer races the reset of the connection, which drops what it did not read
        assert_refused(answer)
    grown = process.memory_kb("VmHWM") - peak_before
    assert grown < 16 * 1024, f"the server grew by {grown} kB"
    assert status_of(process.exchange(request([b"Connection: close"]))) == 200


def test_heads_over_a_limit_are_431(process: Server) -> None:
    over = MAX_HEAD_BYTES + 1024
    # A whole request whose header is too large; one whose URL is; one with too many headers.
    assert_refused(process.exchange(request([b"X-Big: " + b"a" * over])))
    assert_refused(process.exchange(request([], target=b"/healthz?q=" + b"a" * over)))
    headers = [b"X-H%d: v" % i for i in range(MAX_HEADERS)]  # with Host, one too many
    assert_refused(process.exchange(request(headers)))
    # A head that is not finished yet is refused as soon as it is too large.
    assert_refused(process.exchange(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * over))
    # The same, after a request that passed on the same connection.
    with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
        sock.sendall(request([b"X-Small: 1"]))
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert status_of(first) == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * over)
        assert_refused(read_all(sock))


def test_heads_within_the_limits_and_large_bodies_pass(process: Server) -> None:
    # Just within: the size (URL and headers' names and values) and the count.
    size = MAX_HEAD_BYTES - len(b"/healthz") - len(b"host" + b"test") - len(b"x-big")
    answer = process.exchange(request([b"Connection: close", b"X-Big: " + b"a" * (size - 15)]))
    assert status_of(answer) == 200, answer[:300]
    headers = [b"X-H%d: v" % i for i in range(MAX_HEADERS - 2)] + [b"Connection: close"]
    assert status_of(process.exchange(request(headers))) == 200
    # A body is not part of the head: a 1 MB body is read (and judged on its own), and the next
    # request on the connection is a request like any other; pipelined requests too.
    body = b'{"api_key": "' + b"k" * (1024 * 1024) + b'"}'
    post = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    answer = process.exchange(post + request([b"X-Next: 1"]) + request([b"Connection: close"]))
    assert status_of(answer) == 422, answer[:300]
    assert b"may not be greater than 200 characters" in answer
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer[-600:]


def test_too_many_headers_are_refused_under_any_server(server_factory: Callable[..., LiveServer]) -> None:
    # The live-server fixture runs plain uvicorn (no head limits): the app counts headers itself.
    srv = server_factory()
    with srv.client() as c:
        base = len(c.build_request("GET", "/healthz").headers)
        r = c.get("/healthz", headers={f"X-H{i}": "v" for i in range(MAX_HEADERS + 1 - base)})
        assert r.status_code == 431 and r.json() == {
            "message": "Request header fields too large.",
            "errors": {},
        }
        r = c.get("/healthz", headers={f"X-H{i}": "v" for i in range(MAX_HEADERS - base)})
        assert r.status_code == 200
        # Documented on every route of the API, as 413 is.
        spec = c.get("/openapi.json").json()
        for path, methods in spec["paths"].items():
            for method, operation in methods.items():
                if path.startswith("/api/"):
                    assert "431" in operation["responses"], (method, path)


def test_rcsgate_serve_caps_request_heads(process_env: dict[str, str], tmp_path: Path) -> None:
    """`rcsgate serve` starts uvicorn with http_server.server_options() (as `rcsgate api` must)."""
    port = free_port()
    env = {**process_env, "RCSGATE_PORT": str(port)}
    log = tmp_path / "serve.log"
    proc = start(env, log, RCSGATE, "serve")
    try:
        srv = Server(proc, port, log)
        srv.wait_ready()
        answer = srv.exchange(request([b"X-Big: " + b"a" * (MAX_HEAD_BYTES + 1024)]))
        assert status_of(answer) == 431, "wire rcsgate.api.http_server.server_options() into uvicorn.run"
        assert_refused(answer)
    finally:
        proc.terminate()
        proc.wait(30)
