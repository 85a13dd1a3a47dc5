"""Shared fixtures: a real database per test (SQLite always, PostgreSQL when RCSGATE_TEST_DATABASE_URL is
set) and a real uvicorn server on a free loopback port, with an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from rcsgate.api.app import create_app
from rcsgate.api.http_server import server_options
from rcsgate.clock import ManualClock
from rcsgate.config import Settings, normalize_database_url
from rcsgate.services import accounts, auth
from rcsgate.store.db import Database
from rcsgate.store.migrate import upgrade
from rcsgate.store.tables import metadata

T = TypeVar("T")

PG_ENV = "RCSGATE_TEST_DATABASE_URL"
JWT_SECRET = "test-secret-" + "x" * 60
BACKENDS = ["sqlite", "postgresql"]


def run(fn: Callable[[Database], Awaitable[T]], url: str) -> T:
    """Run one async service call against the database at ``url`` from synchronous test code."""

    async def main() -> T:
        db = Database.from_url(url)
        try:
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(main())


# ------------------------------------------------------------------ scheduling

# The files that take longest (seconds of one xdist worker on a 2-core machine), started first:
# `make test` gives the workers whole files in collection order (--no-loadscope-reorder; xdist's
# own order, most tests first, would start these one- and two-test files last, and the run would
# end with one worker on them while the others idle).
LONGEST_FIRST = (
    "test_crash_recovery.py",  # ~100-140 s
    "test_schemathesis.py",  # ~150 s, in 40-odd short tests
    "test_crash_recovery_embedded.py",  # ~60-100 s
    "test_smpp_crash.py",  # ~85 s
    "test_rbm.py",
    "test_single_send.py",
    "test_message_queries.py",
    "test_cli.py",
    "test_scaled_postgres.py",
    "test_contact_book.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


# ------------------------------------------------------------------ databases


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


async def _pg_admin(url: str, sql: str) -> None:
    u = make_url(normalize_database_url(url))
    conn = await asyncpg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password, database=u.database
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _empty_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (no schema), dropped afterwards; skips without PostgreSQL."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    name = f"rcsgate_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalize_database_url(base)).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head, dropped afterwards."""
    for url in _empty_pg_database():
        upgrade(url)
        yield url


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, without a schema (migration tests)."""
    yield from _empty_pg_database()


async def _truncate_pg(url: str) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password, database=u.database
    )
    try:
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated database: a copy of the SQLite template, or the session's PostgreSQL truncated."""
    if request.param == "sqlite":
        path = tmp_path / "rcsgate.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    asyncio.run(_truncate_pg(url))
    return url


# ------------------------------------------------------------------ server


@dataclass
class LiveServer:
    base_url: str
    db_url: str
    clock: ManualClock
    settings: Settings

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10, **kwargs)

    def call(self, fn: Callable[[Database], Awaitable[T]]) -> T:
        return run(fn, self.db_url)

    def new_account(self, name: str = "acme", *, balance: str = "100", mode: str = "live") -> tuple[int, str]:
        """An account with funds and a live key: (account id, api key)."""

        async def make(db: Database) -> tuple[int, str]:
            account = await accounts.create_account(db, self.clock, name=name, mode=mode)  # type: ignore[arg-type]
            await accounts.topup(db, self.clock, account_id=account.id, amount=balance)
            key = await auth.create_key(db, self.clock, account_id=account.id)
            return account.id, key.key

        return self.call(make)

    def token(self, api_key: str) -> str:
        with self.client() as c:
            r = c.post("/api/auth/login", json={"api_key": api_key})
            assert r.status_code == 200, r.text
            return str(r.json()["bearer"])


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServerThread:
    def __init__(self, app: Any) -> None:
        self.sock = _free_socket()
        self.port = self.sock.getsockname()[1]
        # The HTTP layer production runs (api/http_server.py: capped request heads).
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", **server_options())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server thread died during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


def make_settings(db_url: str, var_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "var_dir": var_dir,
        "jwt_secret": JWT_SECRET,
        "rate_limit": "1000/second",
        "webhooks_allow_private": True,
        "worker_poll_seconds": 0.01,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def server_factory(db_url: str, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start servers on this test's database; settings may be overridden per server."""
    stack: list[ServerThread] = []

    def start(*, clock: ManualClock | None = None, run_workers: bool = False, **overrides: Any) -> LiveServer:
        clock = clock or ManualClock()
        settings = make_settings(db_url, tmp_path / "var", **overrides)
        app = create_app(settings, clock=clock, run_workers=run_workers, configure_logs=False)
        thread = ServerThread(app).__enter__()
        stack.append(thread)
        return LiveServer(f"http://127.0.0.1:{thread.port}", db_url, clock, settings)

    yield start
    for thread in reversed(stack):
        thread.__exit__()


@pytest.fixture
def server(server_factory: Callable[..., LiveServer]) -> LiveServer:
    return server_factory()


# ------------------------------------------------------------------ webhook receiver


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on a loopback port that records what it is sent; start() and stop() at will
    (a stopped receiver refuses connections)."""

    def __init__(self) -> None:
        self.port = _free_socket_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[Received] = []
        self.status = 200
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the webhook sender's pool expects of a customer's server: with HTTP/1.0
            # every webhook cost a connection and a thread at each end, which in the crash tests
            # (tens of thousands of webhooks) was CPU the processes under test went without.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        connections = self._connections

        class Server(ThreadingHTTPServer):
            # The webhook sender opens up to 200 connections at once; socketserver's default
            # backlog of 5 would refuse most of them.
            request_queue_size = 1024
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with receiver._lock:
                    connections.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request: Any) -> None:
                with receiver._lock:
                    connections.discard(request)
                super().shutdown_request(request)

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            # Kept-alive connections outlive the listening socket: a stopped receiver answers nothing.
            with self._lock:
                open_connections = list(self._connections)
            for conn in open_connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._server = None

    def bodies(self) -> list[Any]:
        return [r.json() for r in self.received]


def _free_socket_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def started() -> Iterator[list[Any]]:
    """Processes a test starts (objects with a ``proc`` Popen, e.g. test_processes.Proc), killed
    afterwards if still running."""
    procs: list[Any] = []
    yield procs
    for p in procs:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def eventually(
    check: Callable[[], T], *, timeout: float = 5.0, what: str = "condition", interval: float = 0.02
) -> T:
    """Poll (in real time) until ``check`` returns something truthy: the workers run in the server thread.
    A costly check takes a longer ``interval``, so it does not starve what it waits for."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        time.sleep(interval)
