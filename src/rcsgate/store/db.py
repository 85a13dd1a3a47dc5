"""Engine and transaction helpers shared by every process kind.

SQLite: WAL so readers never block the writer; ``synchronous=NORMAL`` because WAL
keeps committed transactions durable across a process crash (only an OS crash
can lose the last few); write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue on the busy timeout instead of failing when a read lock cannot be
upgraded.

SQLite writes run on the event loop's own thread (``_InlineConnection``), reads in aiosqlite's
threads. A write statement takes microseconds, but handing it to a thread and back costs a loop
round trip plus a wait for the GIL, which under load is most of a write transaction's time and, with
one writer at a time, caps the whole process. Reads may scan for long, so they keep their thread.

Grouped commits (SQLite): a process's writers take turns on one open transaction, each inside
its own SAVEPOINT (a failing writer rolls back only its own work), and the transaction commits
when nobody else is queued, or the group is large or old. ``write()`` returns only after the
commit that holds its work, so an acknowledged request is on disk; concurrent requests share one
commit instead of paying one each.

A write that fails because the database's storage is full (SQLite's SQLITE_FULL, PostgreSQL's
SQLSTATE 53100; ``is_storage_full`` is the one place that tells) raises the domain error
``StorageFull`` (an ``Unavailable``: the API answers 503 with Retry-After). The Database remembers it
(``storage_full``, which /readyz reports) until a write commits ``FULL_HOLD_SECONDS`` after the last
such failure, and logs each such episode once. Not at the first write that commits: on a full disk
some still do (one that changes nothing, or fits in the room the write-ahead log already has), and
readiness would flap with every one.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sized
from contextlib import asynccontextmanager, contextmanager, nullcontext, suppress
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rcsgate.config import normalize_database_url
from rcsgate.domain.errors import StorageFull
from rcsgate.logging_setup import get_logger

log = get_logger("rcsgate.db")

_READ_OPTION = "rcsgate_read"
# "database or disk is full" (the primary result code; extended codes keep it in the low byte).
SQLITE_FULL: Final = 13
# PostgreSQL's disk_full condition.
PG_DISK_FULL: Final = "53100"
# How long after a write failed for lack of space the database still counts as full.
FULL_HOLD_SECONDS: Final = 10.0


def is_storage_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from or while handling, is the database running
    out of space (SQLite's SQLITE_FULL, PostgreSQL's SQLSTATE 53100, or our StorageFull)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageFull):
            return True
        orig: Any = exc.orig if isinstance(exc, DBAPIError) else exc
        if (
            isinstance(orig, sqlite3.Error)
            and (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_FULL
        ):
            return True
        if getattr(orig, "sqlstate", None) == PG_DISK_FULL:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_sqlite_url(url: str) -> bool:
    return normalize_database_url(url).startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    _ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection idle this long is checked (a round trip) before use.
PING_AFTER_IDLE_SECONDS: Final = 5.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection before use only when it has been idle for a while. SQLAlchemy's
    ``pool_pre_ping`` checks every checkout, and with asyncpg a check is three round trips (BEGIN,
    an empty query, ROLLBACK): on the pipeline's short transactions that was a round trip for each of
    their own statements. A connection in steady use has just proved itself; one that sat idle may
    have been dropped by a database restart or a firewall, and a failed check makes the pool take a
    fresh connection instead (``DisconnectionError``). A drop in between still fails that one
    transaction, which the callers retry as any other database error."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _idle_from(dbapi_connection: Any, record: Any) -> None:
        record.info["rcsgate_idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("rcsgate_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("idle pooled connection failed its check") from exc


_OFF_LOOP: ContextVar[bool] = ContextVar("rcsgate_sqlite_off_loop", default=False)
# An executemany of more rows than this goes to aiosqlite's thread even without off_loop().
_INLINE_MAX_ROWS = 256


@contextmanager
def off_loop() -> Iterator[None]:
    """Run this task's SQLite writes in aiosqlite's thread, for work over a whole campaign's rows:
    on the loop's thread such a statement would hold up every other request for its duration, in a
    thread SQLite releases the GIL while it works."""
    token = _OFF_LOOP.set(True)
    try:
        yield
    finally:
        _OFF_LOOP.reset(token)


# What to run once the current ``Database.write()`` block's transaction has committed (after_commit).
_AFTER_COMMIT: ContextVar[list[Callable[[], None]] | None] = ContextVar("rcsgate_after_commit", default=None)


def after_commit(callback: Callable[[], None]) -> None:
    """Call ``callback`` once the transaction of the ``Database.write()`` block this runs in has
    committed (on SQLite, the grouped commit holding its work); never if it rolls back. Outside such
    a block it is dropped. For what must not count work that may be undone (metrics)."""
    pending = _AFTER_COMMIT.get()
    if pending is not None:
        pending.append(callback)


class _InlineConnection(aiosqlite.Connection):
    """aiosqlite's interface, running each call at once on the calling (event loop) thread, except
    under ``off_loop()`` and for large executemany calls."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if _OFF_LOOP.get() or (
            getattr(fn, "__name__", "") == "executemany"
            and len(args) > 1
            and isinstance(args[1], Sized)
            and len(args[1]) > _INLINE_MAX_ROWS
        ):
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        return fn(*args, **kwargs)


def _inline_creator(database: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    async def connect() -> aiosqlite.Connection:
        # The connection is opened (and finally closed) by aiosqlite's thread, used by the loop's.
        conn = _InlineConnection(
            lambda: sqlite3.connect(database, timeout=30, check_same_thread=False), iter_chunk_size=64
        )
        conn._thread.daemon = True
        return await conn

    return connect


def _create_private(database: str) -> None:
    """Create a missing database file readable and writable by its owner only: it holds webhook
    signing secrets and connector keys. SQLite gives the -wal and -shm files it creates beside it the
    database file's mode, so they are private too. An existing file keeps its mode."""
    try:
        fd = os.open(database, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _sqlite_engine(url: str, *, inline: bool = False) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        _create_private(database)
    if inline and database and database != ":memory:":
        engine = create_async_engine(url, async_creator=_inline_creator(database))
    else:
        engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so we can choose BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "DEFERRED" if conn.get_execution_options().get(_READ_OPTION) else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class _GroupCommitWriter:
    """One SQLite write transaction shared by queued writers; see the module docstring."""

    # Bounds on how long a busy stream of writers may keep one group (and its callers) waiting.
    MAX_GROUP = 256
    MAX_GROUP_SECONDS = 0.05

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Queueing this process's writers in asyncio replaces sqlite's busy handler (which sleeps up
        # to 100 ms between tries) for all but other processes.
        self.lock = asyncio.Lock()
        self.queued = 0
        self._conn: AsyncConnection | None = None
        self._trans: Any = None
        self._group: asyncio.Future[None] | None = None
        self._group_size = 0
        self._group_started = 0.0

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        self.queued += 1
        try:
            await self.lock.acquire()
        except BaseException:
            self.queued -= 1
            self._commit_if_abandoned()
            raise
        self.queued -= 1
        loop = asyncio.get_running_loop()
        try:
            if self._conn is None:
                self._conn = await self.engine.connect()
                self._trans = await self._conn.begin()
                self._group = loop.create_future()
                self._group_size = 0
                self._group_started = loop.time()
            conn, group = self._conn, self._group
            assert group is not None
            self._group_size += 1
            savepoint = await conn.begin_nested()
            try:
                yield conn
            except BaseException as exc:
                if is_storage_full(exc):
                    # SQLite may have rolled back the whole transaction, not just this savepoint:
                    # the group's earlier writers must not be told their work was committed.
                    await self._finish(exc)
                    raise
                try:
                    await savepoint.rollback()
                except BaseException as exc:
                    await self._finish(exc)
                    raise
                await self._maybe_commit(loop)
                raise
            await savepoint.commit()
            await self._maybe_commit(loop)
        finally:
            self.lock.release()
        await asyncio.shield(group)

    async def _maybe_commit(self, loop: asyncio.AbstractEventLoop) -> None:
        if (
            self.queued == 0
            or self._group_size >= self.MAX_GROUP
            or loop.time() - self._group_started >= self.MAX_GROUP_SECONDS
        ):
            await self._finish(None)

    async def _finish(self, failure: BaseException | None) -> None:
        """Commit (or, after ``failure``, roll back) the open group and tell its writers."""
        conn, trans, group = self._conn, self._trans, self._group
        self._conn = self._trans = self._group = None
        if conn is None or group is None:
            return
        try:
            if failure is None:
                await trans.commit()
            else:
                await trans.rollback()
        except BaseException as exc:
            failure = failure or exc  # a rollback that fails after a failure: the first one tells why
        finally:
            await conn.close()
        if failure is None:
            group.set_result(None)
        else:
            error = RuntimeError(f"write transaction failed: {failure!r}")
            error.__cause__ = failure  # for is_storage_full
            group.set_exception(error)
            group.exception()  # retrieved here, so a group whose writers all failed logs no warning

    def _commit_if_abandoned(self) -> None:
        # A cancelled waiter may have been the one the lock holder left the commit to.
        if self.queued == 0 and not self.lock.locked() and self._conn is not None:
            asyncio.get_running_loop().create_task(self._commit_abandoned())

    async def _commit_abandoned(self) -> None:
        async with self.lock:
            if self._conn is not None:
                await self._finish(None)


class Database:
    """An engine plus the two ways services open transactions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # What write() runs on: on SQLite a second engine, whose connections run on the loop's thread.
        self.write_engine = engine
        self._writer: _GroupCommitWriter | None = None
        # Since when (monotonic time) writes fail for lack of space, and when one last did; None, 0.0
        # while they succeed.
        self.full_since: float | None = None
        self._last_full = 0.0
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(engine.url.render_as_string(hide_password=False), inline=True)
            self._writer = _GroupCommitWriter(self.write_engine)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(create_engine(url))

    @asynccontextmanager
    async def write(self, *, bulk: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed when the block ends without an exception. ``bulk``: the block
        writes a campaign's worth of rows (see ``off_loop``). Raises StorageFull when the database
        has no space left for it."""
        committed: list[Callable[[], None]] = []
        token = _AFTER_COMMIT.set(committed)
        try:
            if self._writer is None:
                async with self.engine.begin() as conn:
                    yield conn
            else:
                with off_loop() if bulk else nullcontext():
                    async with self._writer.write() as conn:
                        yield conn
        except Exception as exc:
            if not is_storage_full(exc):
                raise
            self._storage_full(exc)
            if isinstance(exc, StorageFull):
                raise
            raise StorageFull() from exc
        finally:
            with suppress(ValueError):  # a block abandoned and closed from another context
                _AFTER_COMMIT.reset(token)
        if self.full_since is not None and self._now() - self._last_full >= FULL_HOLD_SECONDS:
            log.warning("database_writes_resumed", full_seconds=round(self._now() - self.full_since, 1))
            self.full_since = None
        for callback in committed:
            try:
                callback()
            except Exception as exc:  # the work is committed: a failing observer must not say otherwise
                log.error("after_commit_failed", error=type(exc).__name__, exc_info=exc)

    @property
    def storage_full(self) -> bool:
        """Whether writes fail for lack of space (see the module docstring)."""
        return self.full_since is not None

    def _storage_full(self, exc: BaseException) -> None:
        self._last_full = self._now()
        if self.full_since is None:
            self.full_since = self._last_full
            log.error("database_storage_full", error=str(exc.__cause__ or exc)[:200])

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    async def probe_write(self) -> None:
        """Raises StorageFull while writes fail for lack of space. Once none has for
        ``FULL_HOLD_SECONDS``, a small committed write tells whether space is back, so that a
        process nobody writes through (say, an API process its load balancer left) notices."""
        if self.full_since is None:
            return
        if self._now() - self._last_full >= FULL_HOLD_SECONDS:
            async with self.write() as conn:
                if self.is_sqlite:
                    # Rewrites the header page: a commit that needs room in the write-ahead log.
                    version = (await conn.execute(text("PRAGMA user_version"))).scalar_one()
                    await conn.execute(text(f"PRAGMA user_version = {int(version)}"))
                else:
                    await conn.execute(text("SELECT txid_current()"))
        if self.full_since is not None:
            raise StorageFull()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot), never holding a write lock."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                await conn.execution_options(**{_READ_OPTION: True})
            async with conn.begin():
                yield conn

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()
        await self.engine.dispose()
