"""Message query benchmark: `GET /api/messages` with each filter (and sort) the endpoint supports, at
1,000,000 stored messages for the account, against the same SELECTs run directly on the driver.

Data: a migrated database (real schema, `rcsgate db upgrade`), the demo account plus two other
accounts. Rows are loaded into the real `messages` table by bulk SQL (PostgreSQL: COPY; SQLite:
executemany in one transaction), with the table's secondary indexes dropped during the load and
recreated after (their definitions are read back from the database, so they are exactly the
migrated ones). The per-day and per-hour message counters (message_day_counts,
message_hour_counts) are written by their triggers, as for any insert. The demo account gets --rows RCS messages spread evenly over the last 90 days
(half in campaigns of 5000, half single sends with a unique reference_id; 2 % of those with an SMS
alternative that was used, i.e. an SMS child row), the other accounts --other-rows each.
PostgreSQL is ANALYZEd after the load (autovacuum would do it); SQLite is not, because rcsgate
never runs ANALYZE (--analyze-sqlite to compare).

Each case runs --requests requests (after 5 warm-up ones), sequentially from this process over
one keep-alive connection (aiohttp), each with fresh random values (an existing id, campaign,
reference, day). p50/p99 are client-side. Baseline: for the same sequence of filters, the statements
the endpoint runs (the count: with a filter, of its matches; without, the day and hour counters
plus the partial hours at the period's ends; then the page: SELECT … ORDER BY … LIMIT … OFFSET …), written
out by hand as message_queries.list_messages builds them, on the raw driver (asyncpg / sqlite3)
from this process, in one read transaction: no HTTP, no auth, no JSON, no ORM. Ratio = rcsgate ÷
baseline.

Server: SQLite `rcsgate serve`; PostgreSQL `rcsgate api` (one process).

Usage: python bench/queries.py [--database-url URL] [--rows 1000000] [--requests 200] [--quick] [--json] [--update-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import harness
from harness import Stack

from rcsgate.services import message_queries
from rcsgate.store import message_counts

TARGET_P99_MS = 30.0
WARMUP = 5
MIN_REQUESTS = 20
PERIOD = timedelta(days=90)
MAX_PERIOD = timedelta(days=92)  # message_queries.MAX_PERIOD: the default window
CAMPAIGN_SIZE = 5000
SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite
API_TS = "%Y-%m-%d %H:%M:%S"

COLUMNS = [
    "id", "account_id", "campaign_id", "parent_id", "type", "source", "reference_id", "phone", "country",
    "sender", "agent_id", "kind", "content", "sms_alternative", "parts", "status", "fail_reason",
    "validity_seconds", "expires_at", "callback_url", "check_stop_list", "tariff_id", "price", "reserved",
    "charged", "priority", "due_at", "lease_until", "attempts", "upstream", "upstream_id", "created_at",
    "sent_at", "delivered_at", "read_at", "finished_at",
]  # fmt: skip
SHOWN = [c.name for c in message_queries.SHOWN]  # the columns a listed message shows
SORT_COLUMNS = {"id": "id", "phone": "phone", "delivered": "delivered_at"}
SMS_PLAN = json.dumps(
    {
        "sender": "DemoSMS",
        "text": "Benchmark SMS",
        "validity_seconds": 86400,
        "check_stop_list": True,
        "parts": 1,
        "unit_price": 250000,
    }
)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Account:
    id: int
    agent_id: int
    tariff_id: int
    first_id: int  # ids first_id .. first_id + rows - 1: RCS messages (created in id order)
    rows: int
    child_first_id: int  # SMS fallbacks after all parents

    def is_campaign(self, i: int) -> bool:
        return i % (2 * CAMPAIGN_SIZE) < CAMPAIGN_SIZE

    def campaign_id(self, i: int) -> int | None:
        # Campaign ids are per benchmark, not per account: account a's k-th campaign is a*100000 + k.
        return self.id * 100_000 + i // (2 * CAMPAIGN_SIZE) + 1 if self.is_campaign(i) else None

    def reference(self, i: int) -> str:
        return f"ref{i}"

    def has_fallback(self, i: int) -> bool:
        return not self.is_campaign(i) and i % 50 == 1

    def created(self, i: int, end: datetime) -> datetime:
        return end - PERIOD + PERIOD * (i / self.rows)


def message_rows(acct: Account, end: datetime, sqlite: bool) -> Iterator[tuple[Any, ...]]:
    """Parent RCS messages, then the SMS children, as tuples in COLUMNS order."""

    def ts(value: datetime | None) -> Any:
        if value is None:
            return None
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime(SQLITE_TS) if sqlite else naive

    true = 1 if sqlite else True
    # Sent through an upstream no process serves ("history"): with "simulator", `rcsgate serve`'s
    # embedded simulator would take up the reads it still owes for every `delivered` row at start
    # (a third of them) and write them while the cases run.
    text = json.dumps({"text": "Benchmark message"})
    sms = json.dumps({"text": "Benchmark SMS"})
    for i in range(acct.rows):
        created = acct.created(i, end)
        sent = created + timedelta(seconds=1)
        fallback = acct.has_fallback(i)
        delivered = None if fallback else sent + timedelta(seconds=2)
        status = "undelivered" if fallback else ("read" if i % 3 else "delivered")
        yield (
            acct.first_id + i, acct.id, acct.campaign_id(i), None, "rcs", "rest",
            None if acct.is_campaign(i) else acct.reference(i), harness.ua_number(i % 200_000), "UA",
            "demo_agent", acct.agent_id, "text", text, SMS_PLAN if fallback else None, None, status,
            "undelivered" if fallback else None, 86400, ts(created + timedelta(days=1)), None, true,
            acct.tariff_id, 200_000, 0, 0 if fallback else 200_000, 0, None, None, 1,
            "history", f"sim-{acct.first_id + i}", ts(created), ts(sent), ts(delivered),
            ts(delivered + timedelta(seconds=5)) if status == "read" and delivered else None,
            ts(sent + timedelta(seconds=3)),
        )  # fmt: skip
    child = acct.child_first_id
    for i in range(acct.rows):
        if not acct.has_fallback(i):
            continue
        created = acct.created(i, end) + timedelta(seconds=4)
        yield (
            child, acct.id, None, acct.first_id + i, "sms", "rest", acct.reference(i), harness.ua_number(i % 200_000),
            "UA", "DemoSMS", None, "sms", sms, None, 1, "delivered", None, 86400,
            ts(created + timedelta(days=1)), None, true, acct.tariff_id, 250_000, 0, 250_000, 0, None, None, 1,
            "history", f"sim-{child}", ts(created), ts(created), ts(created + timedelta(seconds=1)), None,
            ts(created + timedelta(seconds=1)),
        )  # fmt: skip
        child += 1


def children_of(rows: int) -> int:
    acct = Account(0, 0, 0, 0, rows, 0)
    return sum(1 for i in range(rows) if acct.has_fallback(i))


async def load(stack: Stack, accounts: list[Account], end: datetime, analyze_sqlite: bool) -> float:
    """Bulk-load the messages of `accounts`; returns seconds taken."""
    started = time.perf_counter()
    if stack.kind == "sqlite":
        conn = sqlite3.connect(harness.sqlite_file(stack.url), isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=OFF")
            indexes = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND sql IS NOT NULL"
            ).fetchall()
            conn.execute("BEGIN")
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            insert = f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
            for acct in accounts:
                conn.executemany(insert, message_rows(acct, end, sqlite=True))
            for _, sql in indexes:
                conn.execute(sql)
            conn.execute("COMMIT")
            if analyze_sqlite:
                conn.execute("ANALYZE")
        finally:
            conn.close()
        return time.perf_counter() - started
    pg = await asyncpg.connect(harness.pg_dsn(stack.url))
    try:
        indexes = await pg.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'messages' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        async with pg.transaction():
            for row in indexes:
                await pg.execute(f'DROP INDEX "{row["indexname"]}"')
            for acct in accounts:
                await pg.copy_records_to_table(
                    "messages", records=message_rows(acct, end, sqlite=False), columns=COLUMNS
                )
            # The day counters' folds are deferred to the commit; messages cannot be indexed while
            # they are pending, so they run now.
            await pg.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for row in indexes:
                await pg.execute(row["indexdef"])
            await pg.execute(
                "SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT max(id) FROM messages))"
            )
        await pg.execute("ANALYZE messages, message_day_counts, message_hour_counts")
    finally:
        await pg.close()
    return time.perf_counter() - started


async def ids_of(stack: Stack, account_id: int) -> tuple[int, int]:
    """(agent id, tariff id) the demo setup made for this account."""
    sql_agent = "SELECT id FROM rcs_agents WHERE account_id = {} ORDER BY id LIMIT 1"
    sql_tariff = "SELECT id FROM tariffs ORDER BY id LIMIT 1"
    if stack.kind == "sqlite":
        with sqlite3.connect(harness.sqlite_file(stack.url)) as conn:
            agent = conn.execute(sql_agent.format(int(account_id))).fetchone()
            tariff = conn.execute(sql_tariff).fetchone()
        return int(agent[0]) if agent else 0, int(tariff[0])
    pg = await asyncpg.connect(harness.pg_dsn(stack.url))
    try:
        agent = await pg.fetchval(sql_agent.format(int(account_id)))
        tariff = await pg.fetchval(sql_tariff)
    finally:
        await pg.close()
    return int(agent or 0), int(tariff)


# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class Query:
    id: int | None = None
    campaign_id: int | None = None
    reference_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    sort: str = "id"
    way: str = "asc"
    offset: int = 0
    limit: int = 50

    def params(self) -> dict[str, str]:
        p: dict[str, str] = {}
        if self.id is not None:
            p["filter[id]"] = str(self.id)
        if self.campaign_id is not None:
            p["filter[campaign_id]"] = str(self.campaign_id)
        if self.reference_id is not None:
            p["filter[reference_id]"] = self.reference_id
        if self.created_from is not None:
            p["filter[from]"] = self.created_from.strftime(API_TS)
        if self.created_to is not None:
            p["filter[to]"] = self.created_to.strftime(API_TS)
        if self.sort != "id":
            p["sort"] = self.sort
        if self.way != "asc":
            p["way"] = self.way
        if self.offset:
            p["page[offset]"] = str(self.offset)
        if self.limit != 50:
            p["page[limit]"] = str(self.limit)
        return p

    def period(self) -> tuple[datetime, datetime]:
        """As message_queries.check_period: the given period, by default the 92 days up to now."""
        to = self.created_to or datetime.now(UTC)
        return self.created_from or to - MAX_PERIOD, to

    @property
    def filtered(self) -> bool:
        return self.id is not None or self.campaign_id is not None or self.reference_id is not None


class Sql:
    """Placeholders and their values for one statement on one engine."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self.params: list[Any] = []

    def __call__(self, value: Any) -> str:
        if isinstance(value, datetime):
            naive = value.astimezone(UTC).replace(tzinfo=None)
            value = naive.strftime(SQLITE_TS) if self.sqlite else naive
        elif isinstance(value, date) and self.sqlite:
            value = value.isoformat()
        self.params.append(value)
        return "?" if self.sqlite else f"${len(self.params)}"


def filtered_sql(q: Query, account_id: int, sqlite: bool) -> tuple[Sql, str, str]:
    """(params, count SQL, page SQL) as message_queries._filtered_page writes them: the period and
    the sort in expressions no index serves, so the filter's index is used."""
    sql = Sql(sqlite)
    start, end = q.period()
    where = (
        f"account_id = {sql(account_id)} AND coalesce(created_at, created_at) >= {sql(start)} "
        f"AND coalesce(created_at, created_at) <= {sql(end)}"
    )
    if q.id is not None:
        where += f" AND id = {sql(q.id)}"
    if q.campaign_id is not None:
        where += f" AND campaign_id = {sql(q.campaign_id)}"
    if q.reference_id is not None:
        where += f" AND reference_id = {sql(q.reference_id)}"
    column, way = SORT_COLUMNS[q.sort], "DESC" if q.way == "desc" else "ASC"
    if q.sort == "id" and sqlite:  # SQLite's filter indexes already give their matches by id
        order = f"id {way}, id {way}"
    else:
        order = f"coalesce({column}, {column}) {way}, coalesce(id, id) {way}"
    page = f"SELECT {', '.join(SHOWN)} FROM messages WHERE {where} ORDER BY {order} LIMIT {q.limit} OFFSET {q.offset}"
    return sql, f"SELECT count(*) FROM messages WHERE {where}", page


def period_count_sql(q: Query, account_id: int, sqlite: bool) -> tuple[Sql, str]:
    """As store.message_counts.count_period: whole days and whole hours from the counters, partial
    ends from the index."""
    sql = Sql(sqlite)
    start, end = q.period()
    parts = message_counts.split(start, end)
    ids = "min(id), max(id)" if q.sort == "id" else "NULL, NULL" if sqlite else "NULL::bigint, NULL::bigint"
    selects = [
        f"SELECT count(*), {ids} FROM messages WHERE account_id = {sql(account_id)} AND created_at >= {sql(lo)} "
        f"AND created_at {'<=' if inclusive else '<'} {sql(hi)}"
        for lo, hi, inclusive in parts.ends
    ]
    if parts.hours:
        runs = " OR ".join(f"hour BETWEEN {sql(first)} AND {sql(last)}" for first, last in parts.hours)
        selects.append(
            "SELECT coalesce(sum(count), 0), min(min_id), max(max_id) FROM message_hour_counts "
            f"WHERE account_id = {sql(account_id)} AND ({runs})"
        )
    if parts.whole is not None:
        selects.append(
            "SELECT coalesce(sum(count), 0), min(min_id), max(max_id) FROM message_day_counts "
            f"WHERE account_id = {sql(account_id)} AND day >= {sql(parts.whole[0])} AND day <= {sql(parts.whole[1])}"
        )
    return sql, " UNION ALL ".join(selects)


def period_page_sql(
    q: Query, account_id: int, sqlite: bool, bounds: tuple[int, int] | None, walk: bool
) -> tuple[Sql, str]:
    """As message_queries._period_page: by id between the period's first and last ids; by another
    column walking its index (walk) or sorting the period's matches."""
    sql = Sql(sqlite)
    start, end = q.period()
    column, way = SORT_COLUMNS[q.sort], "DESC" if q.way == "desc" else "ASC"
    where = f"account_id = {sql(account_id)}"
    created = "created_at" if q.sort != "id" and not walk else "coalesce(created_at, created_at)"
    where += f" AND {created} >= {sql(start)} AND {created} <= {sql(end)}"
    if q.sort == "id":
        if bounds is not None:
            where += f" AND id BETWEEN {sql(bounds[0])} AND {sql(bounds[1])}"
        order = f"id {way}, id {way}"
    elif walk:
        order = f"{column} {way}, id {way}"
    else:
        order = f"coalesce({column}, {column}) {way}, coalesce(id, id) {way}"
    return (
        sql,
        f"SELECT {', '.join(SHOWN)} FROM messages WHERE {where} ORDER BY {order} LIMIT {q.limit} OFFSET {q.offset}",
    )


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[random.Random], Query]


def cases(acct: Account, end: datetime) -> list[Case]:
    def any_index(rng: random.Random) -> int:
        return rng.randrange(acct.rows)

    def single_index(rng: random.Random) -> int:
        while True:
            i = rng.randrange(acct.rows)
            if not acct.is_campaign(i):
                return i

    def campaign(rng: random.Random) -> int:
        while True:
            c = acct.campaign_id(rng.randrange(acct.rows))
            if c is not None:
                return c

    def day(rng: random.Random) -> datetime:
        return (end - timedelta(days=rng.randrange(1, 89))).replace(hour=0, minute=0, second=0, microsecond=0)

    return [
        Case("no filter (default 92 days, 50 by id)", lambda rng: Query()),
        Case("filter[id]", lambda rng: Query(id=acct.first_id + any_index(rng))),
        Case("filter[campaign_id]", lambda rng: Query(campaign_id=campaign(rng))),
        Case("filter[reference_id]", lambda rng: Query(reference_id=acct.reference(single_index(rng)))),
        Case(
            "filter[from] + filter[to] (one day)",
            lambda rng: (lambda d: Query(created_from=d, created_to=d + timedelta(days=1)))(day(rng)),
        ),
        Case("filter[from] (last 7 days)", lambda rng: Query(created_from=end - timedelta(days=7))),
        Case("filter[to] (45 days ago)", lambda rng: Query(created_to=end - timedelta(days=45))),
        Case("sort=phone&way=desc", lambda rng: Query(sort="phone", way="desc")),
        Case("sort=delivered&way=desc", lambda rng: Query(sort="delivered", way="desc")),
        Case("page[limit]=500", lambda rng: Query(limit=500)),
    ]


# ---------------------------------------------------------------- measuring


class Driver:
    """The baseline: the endpoint's two statements on the raw driver."""

    def __init__(self, stack: Stack) -> None:
        self.sqlite = stack.kind == "sqlite"
        self.url = stack.url
        self.lite: sqlite3.Connection | None = None
        self.pg: Any = None

    async def open(self) -> None:
        if self.sqlite:
            self.lite = sqlite3.connect(harness.sqlite_file(self.url), isolation_level=None)
        else:
            self.pg = await asyncpg.connect(harness.pg_dsn(self.url))

    async def close(self) -> None:
        if self.lite is not None:
            self.lite.close()
        if self.pg is not None:
            await self.pg.close()

    async def run(self, account_id: int, q: Query) -> tuple[int, int]:
        """The endpoint's statements for q, in one read transaction: (total, rows on the page)."""
        if self.lite is not None:
            self.lite.execute("BEGIN")
            try:
                return await self._statements(account_id, q, self._lite_fetch)
            finally:
                self.lite.execute("COMMIT")
        async with self.pg.transaction(readonly=True):
            await self.pg.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            return await self._statements(account_id, q, self.pg.fetch)

    async def _lite_fetch(self, statement: str, *params: Any) -> list[Any]:
        assert self.lite is not None
        return self.lite.execute(statement, params).fetchall()

    async def _statements(self, account_id: int, q: Query, fetch: Callable[..., Any]) -> tuple[int, int]:
        if q.filtered:
            sql, count, page = filtered_sql(q, account_id, self.sqlite)
            total = int((await fetch(count, *sql.params))[0][0])
            rows = await fetch(page, *sql.params) if total > q.offset else []
            return total, len(rows)
        sql, count = period_count_sql(q, account_id, self.sqlite)
        counted = await fetch(count, *sql.params)
        total = sum(int(r[0] or 0) for r in counted)
        if total <= q.offset:
            return total, 0
        firsts, lasts = (
            [r[1] for r in counted if r[1] is not None],
            [r[2] for r in counted if r[2] is not None],
        )
        bounds = (min(firsts), max(lasts)) if q.sort == "id" and firsts and lasts else None
        walk = False
        if q.sort != "id" and total > message_queries.SORT_AT_MOST:
            everything = (
                await fetch(
                    "SELECT coalesce(sum(count), 0) FROM message_day_counts WHERE account_id = "
                    + ("?" if self.sqlite else "$1"),
                    account_id,
                )
            )[0][0]
            walk = int(everything) - total + q.offset + q.limit <= 2 * total
        sql, page = period_page_sql(q, account_id, self.sqlite, bounds, walk)
        return total, len(await fetch(page, *sql.params))


async def run_case(
    case: Case,
    session: aiohttp.ClientSession,
    driver: Driver,
    account_id: int,
    requests: int,
    seed: int,
    budget: float,
) -> dict[str, Any]:
    """`requests` measured requests after 5 warm-up ones; a slow case stops after `budget` seconds
    once it has MIN_REQUESTS. The driver then runs the same sequence of filters."""
    queries = [case.make(random.Random(seed * 7919 + i)) for i in range(requests + WARMUP)]
    http_ms: list[float] = []
    totals: list[int] = []
    started = time.perf_counter()
    for n, q in enumerate(queries):
        if len(http_ms) >= MIN_REQUESTS and time.perf_counter() - started > budget:
            queries = queries[:n]
            break
        t = time.perf_counter()
        async with session.get("/api/messages", params=q.params()) as r:
            body = await r.read()
            elapsed = (time.perf_counter() - t) * 1000
            if r.status != 200:
                raise RuntimeError(f"{case.name}: {r.status} {body[:300]!r}")
        doc = json.loads(body)
        if not doc["data"]:
            raise RuntimeError(f"{case.name}: no rows for {q.params()}")
        if n >= WARMUP:
            http_ms.append(elapsed)
            totals.append(int(doc["meta"]["page"]["total"]))
    driver_ms: list[float] = []
    for n, q in enumerate(queries):
        t = time.perf_counter()
        _, got = await driver.run(account_id, q)
        elapsed = (time.perf_counter() - t) * 1000
        if not got:
            raise RuntimeError(f"{case.name}: the driver found no rows for {q.params()}")
        if n >= WARMUP:
            driver_ms.append(elapsed)
    p50, p99 = harness.percentile(http_ms, 50), harness.percentile(http_ms, 99)
    b50, b99 = harness.percentile(driver_ms, 50), harness.percentile(driver_ms, 99)
    return {
        "case": case.name,
        "example_params": queries[WARMUP].params(),
        "requests": len(http_ms),
        "matches_median": int(harness.percentile(totals, 50)),
        "rcsgate_p50_ms": round(p50, 2),
        "rcsgate_p99_ms": round(p99, 2),
        "baseline_p50_ms": round(b50, 2),
        "baseline_p99_ms": round(b99, 2),
        "ratio_p50": round(harness.ratio(p50, b50), 2),
        "ratio_p99": round(harness.ratio(p99, b99), 2),
        "meets_target": p99 <= TARGET_P99_MS,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(args.database_url)
    demo = await stack.create()
    others = [
        int(json.loads(stack.cli("accounts", "create", f"other{n}", "--no-key", "--json"))["id"])
        for n in (1, 2)
    ]
    agent_id, tariff_id = await ids_of(stack, demo.account_id)
    end = datetime.now(UTC) - timedelta(minutes=10)
    accounts: list[Account] = []
    next_id = 1_000_000  # above anything the demo setup created
    for account_id, rows in [(demo.account_id, args.rows)] + [(a, args.other_rows) for a in others]:
        accounts.append(Account(account_id, agent_id, tariff_id, next_id, rows, next_id + rows))
        next_id += rows + children_of(rows) + 1000
    print(f"loading {sum(a.rows for a in accounts):,} messages …", file=sys.stderr)
    load_s = await load(stack, accounts, end, args.analyze_sqlite)
    print(f"loaded in {load_s:.1f} s", file=sys.stderr)

    proc = stack.start("serve", "serve") if stack.kind == "sqlite" else stack.start("api", "api")
    driver = Driver(stack)
    results: list[dict[str, Any]] = []
    try:
        await harness.wait_ready(stack.base, [proc])
        token = await harness.bearer(stack.base, demo.api_key)
        await driver.open()
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(
            base_url=stack.base, headers=headers, connector=connector
        ) as session:
            for seed, case in enumerate(cases(accounts[0], end)):
                r = await run_case(
                    case, session, driver, demo.account_id, args.requests, seed, args.case_seconds
                )
                print(
                    f"{case.name}: p50 {r['rcsgate_p50_ms']} ms, p99 {r['rcsgate_p99_ms']} ms "
                    f"(driver {r['baseline_p50_ms']} / {r['baseline_p99_ms']} ms)",
                    file=sys.stderr,
                )
                results.append(r)
        proc.check_alive()
        memory = proc.memory_mb()
    finally:
        await driver.close()
        await stack.stop_all()
    return {
        **harness.result_head("queries", stack.kind, args.quick),
        "setup": {
            "rcsgate": "rcsgate serve" if stack.kind == "sqlite" else "rcsgate api (1 process)",
            "baseline": "count + page SELECTs on the raw driver (sqlite3 / asyncpg), same process as the client",
            "rows_account": args.rows,
            "sms_children_account": children_of(args.rows),
            "rows_other_accounts": [args.other_rows] * len(others),
            "requests_per_case": args.requests,
            "case_seconds": args.case_seconds,
            "load_seconds": round(load_s, 1),
            "analyzed": stack.kind == "postgresql" or args.analyze_sqlite,
        },
        "cases": results,
        "server_memory": memory,
        "targets": {"p99_ms": TARGET_P99_MS, "met": all(r["meets_target"] for r in results)},
        "logs": str(stack.tmp),
    }


def markdown(result: dict[str, Any]) -> str:
    setup = result["setup"]
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[result["database"]]
    rows = [
        [
            f"`{r['case']}`"
            + (f" ({r['requests']} requests)" if r["requests"] < setup["requests_per_case"] else ""),
            f"{r['matches_median']:,}",
            f"{r['rcsgate_p50_ms']} ms",
            f"**{r['rcsgate_p99_ms']} ms**",
            f"{r['baseline_p50_ms']} / {r['baseline_p99_ms']} ms",
            f"{r['ratio_p50']:.1f} / **{r['ratio_p99']:.1f}**",
            f"≤ {TARGET_P99_MS:g} ms {harness.check(r['meets_target'])}",
        ]
        for r in result["cases"]
    ]
    stats = "ANALYZEd after the load" if setup["analyzed"] else "not ANALYZEd (as rcsgate leaves it)"
    return "\n".join(
        [
            harness.measured_on(label, result),
            f"Command: `{result['command']}`. rcsgate: {setup['rcsgate']}. {setup['rows_account']:,} RCS messages "
            f"(+ {setup['sms_children_account']:,} SMS fallbacks) for the account, "
            f"{' + '.join(f'{n:,}' for n in setup['rows_other_accounts'])} for two other accounts; "
            f"loaded in {setup['load_seconds']} s; statistics {stats}. {setup['requests_per_case']} requests per case "
            f"(a case still running after {setup['case_seconds']:g} s stops, with at least {MIN_REQUESTS}); "
            "with fewer than 100 requests p99 is the maximum.",
            "",
            harness.table(
                [
                    "case",
                    "matching rows (median)",
                    "rcsgate p50",
                    "rcsgate p99",
                    "driver p50 / p99",
                    "ratio p50 / p99",
                    "target",
                ],
                rows,
            ),
        ]
    )


def main() -> None:
    parser = harness.new_parser(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="RCS messages of the measured account")
    parser.add_argument("--other-rows", type=int, default=100_000, help="messages of each other account")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per case")
    parser.add_argument(
        "--case-seconds",
        type=float,
        default=120.0,
        help=f"stop a slow case after this long (once it has {MIN_REQUESTS} requests)",
    )
    parser.add_argument("--analyze-sqlite", action="store_true", help="run ANALYZE on SQLite after loading")
    harness.add_run_options(parser, "smoke run: 20,000 rows, 20 requests per case")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.other_rows, args.requests = 20_000, 2_000, 20
    result = asyncio.run(bench(args))
    harness.finish(args, result, "queries", markdown)


if __name__ == "__main__":
    main()
