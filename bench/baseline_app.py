"""Baseline for bench/single_send.py: the least a server on rcsgate's stack must do to accept
`POST /api/messages/rcs/send`.

Starlette on uvicorn (the same server, event loop and HTTP parser rcsgate runs on), the request
body validated with pydantic against the same JSON shape as rcsgate's SendRcsMessageRequest
(plain field constraints, no business rules), then ONE insert of one row into a one-table schema
(primary key only), answered with a JSON body of the same shape as rcsgate's. No authentication
beyond checking that a credential header is present, no rate limit, no duplicate check, no tariff,
balance, agent or contact-book work.

Storage:
  - PostgreSQL: an asyncpg pool per process (10..20 connections, like rcsgate's pool), one
    `INSERT … RETURNING id` per request, autocommit.
  - SQLite: WAL, synchronous=NORMAL (as rcsgate), and a grouped-commit writer: one task takes all
    inserts queued at that moment (≤ 256) and writes them in one transaction on a dedicated
    thread; each request is answered after the commit holding its row.

Run: python bench/baseline_app.py --database-url URL --port N [--workers N]
(bench/single_send.py starts it; `create_schema(url)` makes its table.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import asyncpg  # type: ignore[import-untyped]
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TABLE = "bench_baseline_messages"
ENV_URL = "BENCH_BASELINE_DATABASE_URL"

Digits = Annotated[str, Field(pattern=r"^[0-9]{9,15}$")]
HttpUrl = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s/?#]+")]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PhoneIn(_In):
    number: Digits
    reference_id: Annotated[str, Field(max_length=32, pattern=r"^[A-Za-z0-9]+$")] | None = None


class SuggestionIn(_In):
    type: Literal["link", "call"] | None = None
    text: Annotated[str, Field(min_length=1, max_length=25)]
    url: HttpUrl | None = None
    phone: Digits | None = None
    postback_data: Annotated[str, Field(max_length=2048)] | None = None


class MediaIn(_In):
    url: HttpUrl


class CardIn(_In):
    title: Annotated[str, Field(max_length=200)] | None = None
    text: Annotated[str, Field(max_length=2000)] | None = None
    media: MediaIn | None = None
    suggestions: Annotated[list[SuggestionIn], Field(max_length=4)] | None = None


class OptionsIn(_In):
    text: Annotated[str, Field(min_length=1, max_length=3072)] | None = None
    cards: Annotated[list[CardIn], Field(min_length=1, max_length=10)] | None = None


class SmsIn(_In):
    text: Annotated[str, Field(min_length=1, max_length=1530)]
    sender: Annotated[str, Field(pattern=r"^([A-Za-z0-9]{3,11}|[0-9]{3,15})$")]
    validity: Annotated[int, Field(ge=1, le=72)] | None = None
    validity_seconds: Annotated[int, Field(ge=60, le=259200)] | None = None


class AlternativeIn(_In):
    sms: SmsIn | None = None


class SendIn(_In):
    phone: PhoneIn
    sender: Annotated[str, Field(min_length=1, max_length=40)]
    options: OptionsIn
    alternative_channel: AlternativeIn | None = None
    callback_url: Annotated[HttpUrl, Field(max_length=100)] | None = None
    tariff_code: Annotated[int, Field(ge=0)] | None = None
    validity: Annotated[int, Field(ge=1, le=72)] | None = None
    validity_seconds: Annotated[int, Field(ge=60, le=259200)] | None = None
    add_to_contact_book: bool | None = None
    check_stop_list: bool | None = None


Row = tuple[int, str, str | None, str, str, str]


class Store(Protocol):
    async def insert(self, row: Row) -> int: ...

    async def close(self) -> None: ...


def _ddl(sqlite: bool) -> str:
    key = "INTEGER PRIMARY KEY" if sqlite else "BIGSERIAL PRIMARY KEY"
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id {key}, account_id BIGINT NOT NULL, phone VARCHAR(15) NOT NULL, "
        "reference_id VARCHAR(32), sender VARCHAR(40) NOT NULL, content TEXT NOT NULL, created_at VARCHAR(32) NOT NULL)"
    )


_INSERT_COLUMNS = "(account_id, phone, reference_id, sender, content, created_at)"


class PgStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str) -> PgStore:
        return cls(await asyncpg.create_pool(url, min_size=10, max_size=20))

    async def insert(self, row: Row) -> int:
        query = f"INSERT INTO {TABLE} {_INSERT_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        return int(await self.pool.fetchval(query, *row))

    async def close(self) -> None:
        await self.pool.close()


class SqliteGroupStore:
    """Grouped commits: whatever is queued when the writer comes round goes into one transaction."""

    MAX_GROUP = 256

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.queue: asyncio.Queue[tuple[Row, asyncio.Future[int]]] = asyncio.Queue()
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def insert(self, row: Row) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((row, future))
        return await future

    def _write(self, rows: list[Row]) -> list[int]:
        cursor = self.conn.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            query = f"INSERT INTO {TABLE} {_INSERT_COLUMNS} VALUES (?, ?, ?, ?, ?, ?)"
            ids = [int(cursor.execute(query, row).lastrowid or 0) for row in rows]
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return ids

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self.queue.get()]
            while len(group) < self.MAX_GROUP and not self.queue.empty():
                group.append(self.queue.get_nowait())
            try:
                ids = await loop.run_in_executor(self.thread, self._write, [row for row, _ in group])
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), new_id in zip(group, ids, strict=True):
                if not future.done():
                    future.set_result(new_id)

    async def close(self) -> None:
        self.task.cancel()
        self.thread.shutdown(wait=True)
        self.conn.close()


def _sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def create_schema(url: str) -> None:
    """Create (or empty) the baseline's table. Called once before the server starts."""
    if url.startswith("sqlite"):
        with sqlite3.connect(_sqlite_path(url)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_ddl(True))
            conn.execute(f"DELETE FROM {TABLE}")
        return
    conn = await asyncpg.connect(_pg_dsn(url))
    try:
        await conn.execute(_ddl(False))
        await conn.execute(f"TRUNCATE {TABLE}")
    finally:
        await conn.close()


def _error(message: str, status: int, errors: dict[str, list[str]] | None = None) -> JSONResponse:
    return JSONResponse({"message": message, "errors": errors or {}}, status_code=status)


def create_app(url: str) -> Starlette:
    state: dict[str, Store] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if url.startswith("sqlite"):
            state["store"] = SqliteGroupStore(_sqlite_path(url))
        else:
            state["store"] = await PgStore.open(_pg_dsn(url))
        try:
            yield
        finally:
            await state["store"].close()

    async def send(request: Request) -> Response:
        if "authorization" not in request.headers and "x-api-key" not in request.headers:
            return _error("Unauthenticated.", 401)
        try:
            body = SendIn.model_validate_json(await request.body())
        except ValidationError as exc:
            errors = {".".join(str(p) for p in e["loc"]): [e["msg"]] for e in exc.errors()}
            return _error("The given data was invalid.", 422, errors)
        now = datetime.now(UTC)
        created = now.strftime("%Y-%m-%d %H:%M:%S")
        content = body.options.model_dump_json(exclude_none=True)
        message_id = await state["store"].insert(
            (1, body.phone.number, body.phone.reference_id, body.sender, content, created)
        )
        return JSONResponse(
            {
                "data": {
                    "id": message_id,
                    "reference_id": body.phone.reference_id,
                    "source": "rest",
                    "type": "rcs",
                    "phone": int(body.phone.number),
                    "status": "accepted",
                    "validity": 24,
                    "amount": {"value": "0.0200000", "currency": "EUR"},
                    "sender": body.sender,
                    "created_at": created,
                    "sent_at": None,
                    "delivered_at": None,
                }
            }
        )

    async def ready(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/api/messages/rcs/send", send, methods=["POST"]), Route("/readyz", ready)],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """Factory for uvicorn (one call per worker process)."""
    return create_app(os.environ[ENV_URL])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ[ENV_URL] = args.database_url
    uvicorn.run(
        "baseline_app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        app_dir=str(Path(__file__).resolve().parent),
    )


if __name__ == "__main__":
    main()
