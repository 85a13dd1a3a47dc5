"""Baseline for bench/pipeline.py: the least work that takes N messages from stored to a
`delivered` status webhook acknowledged by the receiver, in one process on the raw driver.

Per batch (the campaign size, 5000 by default):
  1. insert the batch's message rows (PostgreSQL: COPY; SQLite: executemany), status `accepted`;
  2. one UPDATE to `sent` (set-based, by id range), committed;
  3. one transaction: UPDATE to `delivered` and INSERT one outbox row per message holding the
     webhook body (the JSON fields rcsgate sends);
  4. POST every webhook (aiohttp, ≤ 200 at a time, Standard Webhooks HMAC-SHA256 headers) to the
     receiver; then one UPDATE marks the acknowledged outbox rows delivered.
Steps 1-3 of the next batch overlap step 4 of the previous one. No HTTP accept, no JSON validation
of the campaign request, no billing, no events, no `read` webhooks, no retries or leases: a floor,
not a competitor. Its own two tables, in the same database as rcsgate's.

Run by bench/pipeline.py:
  python bench/baseline_pipeline.py --database-url URL --hook URL --messages N [--batch 5000]
prints one JSON line: {"messages", "seconds", "msg_per_s", "peak_rss_mb", "cpu_cores"}.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import asyncpg  # type: ignore[import-untyped]

MESSAGES = "bench_baseline_pipeline_messages"
OUTBOX = "bench_baseline_pipeline_webhooks"
SECRET = base64.b64encode(b"b" * 32)
CONCURRENCY = 200


def ua_number(i: int) -> str:
    n = i + (i // 9990) * 10
    return f"3806{n:08d}"


def ddl(sqlite: bool) -> list[str]:
    ts = "VARCHAR(32)" if sqlite else "TIMESTAMP"
    return [
        f"DROP TABLE IF EXISTS {OUTBOX}",
        f"DROP TABLE IF EXISTS {MESSAGES}",
        f"CREATE TABLE {MESSAGES} (id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, phone VARCHAR(15) NOT NULL, "
        f"sender VARCHAR(40) NOT NULL, content TEXT NOT NULL, status VARCHAR(16) NOT NULL, created_at {ts} NOT NULL, "
        f"sent_at {ts}, delivered_at {ts})",
        f"CREATE TABLE {OUTBOX} (id BIGINT PRIMARY KEY, message_id BIGINT NOT NULL, body TEXT NOT NULL, "
        "status VARCHAR(12) NOT NULL)",
    ]


class Db(Protocol):
    async def insert(self, rows: list[tuple[Any, ...]]) -> None: ...

    async def mark_sent(self, lo: int, hi: int) -> None: ...

    async def mark_delivered(self, lo: int, hi: int, outbox: list[tuple[int, int, str, str]]) -> None: ...

    async def acked(self, ids: list[int]) -> None: ...

    async def close(self) -> None: ...


class Pg:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str) -> Pg:
        pool = await asyncpg.create_pool(url, min_size=2, max_size=2)
        async with pool.acquire() as conn:
            for statement in ddl(False):
                await conn.execute(statement)
        return cls(pool)

    async def insert(self, rows: list[tuple[Any, ...]]) -> None:
        async with self.pool.acquire() as conn:
            await conn.copy_records_to_table(
                MESSAGES,
                records=rows,
                columns=["id", "account_id", "phone", "sender", "content", "status", "created_at"],
            )

    async def mark_sent(self, lo: int, hi: int) -> None:
        await self.pool.execute(
            f"UPDATE {MESSAGES} SET status = 'sent', sent_at = $3 WHERE id BETWEEN $1 AND $2",
            lo,
            hi,
            datetime.now(UTC).replace(tzinfo=None),
        )

    async def mark_delivered(self, lo: int, hi: int, outbox: list[tuple[int, int, str, str]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE {MESSAGES} SET status = 'delivered', delivered_at = $3 WHERE id BETWEEN $1 AND $2",
                lo,
                hi,
                datetime.now(UTC).replace(tzinfo=None),
            )
            await conn.copy_records_to_table(
                OUTBOX, records=outbox, columns=["id", "message_id", "body", "status"]
            )

    async def acked(self, ids: list[int]) -> None:
        await self.pool.execute(f"UPDATE {OUTBOX} SET status = 'delivered' WHERE id = ANY($1::bigint[])", ids)

    async def close(self) -> None:
        await self.pool.close()


class Lite:
    """sqlite3 on one dedicated thread (WAL, synchronous=NORMAL, as rcsgate)."""

    def __init__(self, path: Path) -> None:
        self.thread = ThreadPoolExecutor(max_workers=1)
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        for statement in ddl(True):
            self.conn.execute(statement)

    async def _tx(self, *steps: tuple[str, Any, bool]) -> None:
        def run() -> None:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params, many in steps:
                    if many:
                        self.conn.executemany(sql, params)
                    else:
                        self.conn.execute(sql, params)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

        await asyncio.get_running_loop().run_in_executor(self.thread, run)

    @staticmethod
    def now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    async def insert(self, rows: list[tuple[Any, ...]]) -> None:
        sql = f"INSERT INTO {MESSAGES} (id, account_id, phone, sender, content, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        await self._tx((sql, [(*r[:6], r[6].isoformat(" ")) for r in rows], True))

    async def mark_sent(self, lo: int, hi: int) -> None:
        sql = f"UPDATE {MESSAGES} SET status = 'sent', sent_at = ? WHERE id BETWEEN ? AND ?"
        await self._tx((sql, (self.now(), lo, hi), False))

    async def mark_delivered(self, lo: int, hi: int, outbox: list[tuple[int, int, str, str]]) -> None:
        await self._tx(
            (
                f"UPDATE {MESSAGES} SET status = 'delivered', delivered_at = ? WHERE id BETWEEN ? AND ?",
                (self.now(), lo, hi),
                False,
            ),
            (f"INSERT INTO {OUTBOX} (id, message_id, body, status) VALUES (?, ?, ?, ?)", outbox, True),
        )

    async def acked(self, ids: list[int]) -> None:
        await self._tx((f"UPDATE {OUTBOX} SET status = 'delivered' WHERE id = ?", [(i,) for i in ids], True))

    async def close(self) -> None:
        self.thread.shutdown(wait=True)
        self.conn.close()


def webhook_body(message_id: int, phone: str, created: datetime, sent: datetime, now: datetime) -> str:
    fmt = "%Y-%m-%d %H:%M:%S"
    return json.dumps(
        {
            "error": 0,
            "errorDescription": "No errors",
            "id": message_id,
            "msisdn": phone,
            "reference": "",
            "time_in": created.strftime(fmt),
            "time_sent": sent.strftime(fmt),
            "time_dr": now.strftime(fmt),
            "status": "delivered",
            "price": "0.0200000",
            "currency": "EUR",
        },
        separators=(",", ":"),
    )


def signed(webhook_id: str, body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    mac = hmac.new(base64.b64decode(SECRET), f"{webhook_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


async def post_all(
    session: aiohttp.ClientSession, hook: str, outbox: list[tuple[int, int, str, str]]
) -> list[int]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(row: tuple[int, int, str, str]) -> int | None:
        async with gate:
            try:
                async with session.post(hook, data=row[2], headers=signed(f"evt_{row[0]}", row[2])) as r:
                    await r.read()
                    return row[0] if 200 <= r.status < 300 else None
            except aiohttp.ClientError:
                return None

    results = await asyncio.gather(*(one(row) for row in outbox))
    return [i for i in results if i is not None]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    db: Db
    if args.database_url.startswith("sqlite"):
        db = Lite(Path(args.database_url.split(":///", 1)[1]))
    else:
        db = await Pg.open(args.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))
    cpu0, t0 = os.times(), time.perf_counter()
    pending: asyncio.Task[None] | None = None
    unacked = 0
    content = json.dumps({"text": "Benchmark"})

    async def deliver(outbox: list[tuple[int, int, str, str]]) -> None:
        nonlocal unacked
        ok = await post_all(session, args.hook, outbox)
        unacked += len(outbox) - len(ok)
        await db.acked(ok)

    try:
        for lo in range(1, args.messages + 1, args.batch):
            hi = min(args.messages, lo + args.batch - 1)
            created = datetime.now(UTC).replace(tzinfo=None)
            await db.insert(
                [(i, 1, ua_number(i), "demo_agent", content, "accepted", created) for i in range(lo, hi + 1)]
            )
            await db.mark_sent(lo, hi)
            now = datetime.now(UTC).replace(tzinfo=None)
            outbox = [
                (i, i, webhook_body(i, ua_number(i), created, created, now), "pending")
                for i in range(lo, hi + 1)
            ]
            await db.mark_delivered(lo, hi, outbox)
            if pending is not None:
                await pending
            pending = asyncio.create_task(deliver(outbox))
        if pending is not None:
            await pending
    finally:
        await session.close()
        await db.close()
    seconds = time.perf_counter() - t0
    cpu1 = os.times()
    hwm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return {
        "messages": args.messages,
        "unacknowledged": unacked,
        "seconds": round(seconds, 3),
        "msg_per_s": round(args.messages / seconds, 1),
        "cpu_cores": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / seconds, 2),
        "peak_rss_mb": round(hwm / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--hook", required=True, help="the receiver's URL")
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
