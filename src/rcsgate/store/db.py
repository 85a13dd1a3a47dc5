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
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sized
from contextlib import asynccontextmanager, contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rcsgate.config import normalize_database_url

_READ_OPTION = "rcsgate_read"


def is_sqlite_url(url: str) -> bool:
    return normalize_database_url(url).startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


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


def _sqlite_engine(url: str, *, inline: bool = False) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
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
            except BaseException:
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
            failure = exc
        finally:
            await conn.close()
        if failure is None:
            group.set_result(None)
        else:
            group.set_exception(RuntimeError(f"write transaction failed: {failure!r}"))
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
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(engine.url.render_as_string(hide_password=False), inline=True)
            self._writer = _GroupCommitWriter(self.write_engine)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(create_engine(url))

    @asynccontextmanager
    async def write(self, *, bulk: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed when the block ends without an exception. ``bulk``: the block
        writes a campaign's worth of rows (see ``off_loop``)."""
        if self._writer is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        with off_loop() if bulk else nullcontext():
            async with self._writer.write() as conn:
                yield conn

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
