"""Scale benchmark (PostgreSQL): how the cost of accepting and listing messages grows with the
messages already stored, and whether a worker's memory grows over a long run.

Steps, on one database that only grows:
  1. For each of --sizes (default 0, 1,000,000 and 5,000,000 stored RCS messages of the demo
     account): the table is filled up to that size as bench/queries.py fills it (COPY into the real
     `messages` table, its secondary indexes rebuilt, ANALYZEd; the day counters by their triggers),
     then at that size
       - accept: single sends (`POST /api/messages/rcs/send`) at 64 connections for --duration s
         after --warmup s, against `rcsgate api --workers 2` without a worker, the setup of
         bench/single_send.py on PostgreSQL (bench/loadgen.py as the client);
       - listing: `GET /api/messages` by each case of bench/queries.py (--requests each, sequential,
         one keep-alive connection), p50 / p99 client-side.
  2. On the largest table: --run-messages (default 1,000,000) messages through the pipeline of
     bench/pipeline.py (campaigns of 5000, `rcsgate api` + 2 `rcsgate worker`, zero-latency
     simulator, the `delivered` webhooks acknowledged by a receiver in this process), sampling each
     worker's resident memory (VmRSS) every --sample-seconds. The single sends accepted in step 1
     (no worker ran then) are dispatched during this run too; they are not counted.

What should hold: nothing grows with the table's size except what an index makes logarithmic, and a
worker's RSS levels off instead of growing with the messages it has handled.

Usage: python bench/scale.py --database-url URL [--sizes 0,1000000,5000000] [--run-messages 1000000]
       [--quick] [--json] [--update-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import harness
import pipeline
import queries
import single_send
from harness import Receiver, Stack

TARGET_PAGE_P99_MS = 20.0


@dataclass(frozen=True)
class Chunk(queries.Account):
    """One load of rows; its campaigns and reference ids after the earlier chunks', so none is shared."""

    campaign_base: int = 0

    def campaign_id(self, i: int) -> int | None:
        c = super().campaign_id(i)
        return None if c is None else c + self.campaign_base

    def reference(self, i: int) -> str:
        return f"ref{self.campaign_base}-{i}"  # unique per account: each chunk has its own


async def max_id(stack: Stack) -> int:
    pg = await asyncpg.connect(harness.pg_dsn(stack.url))
    try:
        return int(await pg.fetchval("SELECT coalesce(max(id), 0) FROM messages"))
    finally:
        await pg.close()


async def measure_size(
    stack: Stack,
    args: argparse.Namespace,
    demo: harness.Demo,
    first: queries.Account | None,
    end: datetime,
    stored: int,
) -> dict[str, Any]:
    """The accept, and (when rows are stored: the cases need some) the listing, at this size."""
    accept_args = argparse.Namespace(
        concurrency=64, warmup=args.warmup, duration=args.duration, api_workers=2, with_worker=False
    )
    accept = await single_send.measure_rcsgate(stack, accept_args, demo.api_key, 10_000_000 + stored)
    print(
        f"{stored:,} stored: accept {accept['req_per_s']} req/s, p99 {accept['p99_ms']} ms", file=sys.stderr
    )
    cases: list[dict[str, Any]] = []
    if first is not None:
        proc = stack.start("api", "api")
        driver = queries.Driver(stack)
        try:
            await harness.wait_ready(stack.base, [proc])
            token = await harness.bearer(stack.base, demo.api_key)
            await driver.open()
            async with aiohttp.ClientSession(
                base_url=stack.base,
                headers={"Authorization": f"Bearer {token}"},
                connector=aiohttp.TCPConnector(limit=1),
            ) as session:
                for seed, case in enumerate(queries.cases(first, end)):
                    r = await queries.run_case(
                        case, session, driver, demo.account_id, args.requests, seed, 60.0
                    )
                    print(f"{stored:,} stored: {case.name} p99 {r['rcsgate_p99_ms']} ms", file=sys.stderr)
                    cases.append(r)
            proc.check_alive()
        finally:
            await driver.close()
            await stack.stop_all()
    return {
        "stored": stored,
        "accept_req_per_s": accept["req_per_s"],
        "accept_p50_ms": accept["p50_ms"],
        "accept_p99_ms": accept["p99_ms"],
        "accept_statuses": accept["statuses"],
        "cases": cases,
    }


async def rss_run(stack: Stack, args: argparse.Namespace, demo: harness.Demo) -> dict[str, Any]:
    receiver = Receiver()
    hook = await receiver.start()
    stack.cli("accounts", "set-callback-url", str(demo.account_id), hook)
    receiver.floor = await max_id(stack)
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()

    async def sample() -> None:
        while True:
            workers = [p for p in stack.procs if p.name.startswith("worker")]
            kb = {p.name: harness.status_kb(p.pid, "VmRSS") for p in workers if p.popen.poll() is None}
            rss = {name: round(v / 1024, 1) for name, v in kb.items() if v}
            if rss:
                samples.append(
                    {
                        "seconds": round(time.perf_counter() - started, 1),
                        "delivered": len(receiver.delivered),
                        **rss,
                    }
                )
            await asyncio.sleep(args.sample_seconds)

    sampler = asyncio.create_task(sample())
    run_args = argparse.Namespace(messages=args.run_messages, campaign_size=5000, workers=2)
    try:
        result = await pipeline.run_rcsgate(stack, receiver, run_args, demo.api_key, first_number=20_000_000)
    finally:
        sampler.cancel()
        await receiver.stop()
    print(
        f"run: {result['msg_per_s']} msg/s, worker peak RSS {result['worker_peak_rss_mb']} MB",
        file=sys.stderr,
    )
    return {"pipeline": result, "samples": samples}


def at_fraction(samples: list[dict[str, Any]], total: int, fraction: float) -> dict[str, Any]:
    """The first sample with at least `fraction` of the run's delivered webhooks (else the last)."""
    for s in samples:
        if s["delivered"] >= fraction * total:
            return s
    return samples[-1]


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(args.database_url)
    if stack.kind != "postgresql":
        raise SystemExit("bench/scale.py measures PostgreSQL: give --database-url")
    demo = await stack.create()
    agent_id, tariff_id = await queries.ids_of(stack, demo.account_id)
    end = datetime.now(UTC) - timedelta(minutes=10)
    steps: list[dict[str, Any]] = []
    first: queries.Account | None = None
    stored = 0
    for size in args.sizes:
        if size > stored:
            start_id = await max_id(stack) + 1000
            chunk = Chunk(
                demo.account_id,
                agent_id,
                tariff_id,
                start_id,
                size - stored,
                start_id + size - stored,
                len(steps) * 100_000,
            )
            first = first or chunk
            print(f"loading {size - stored:,} messages …", file=sys.stderr)
            load_s = await queries.load(stack, [chunk], end, analyze_sqlite=False)
            print(f"loaded in {load_s:.1f} s", file=sys.stderr)
            stored = size
        steps.append(await measure_size(stack, args, demo, first, end, stored))
    run = await rss_run(stack, args, demo) if args.run_messages else None
    return {
        **harness.result_head("scale", stack.kind, args.quick),
        "setup": {
            "accept": "rcsgate api --workers 2, no worker; bench/loadgen.py, 64 connections",
            "listing": "rcsgate api (1 process); bench/queries.py's cases, sequential",
            "run": "rcsgate api + 2 rcsgate worker, campaigns of 5000, zero-latency simulator",
            "sizes": args.sizes,
            "duration_s": args.duration,
            "requests_per_case": args.requests,
            "run_messages": args.run_messages,
        },
        "steps": steps,
        "run": run,
        "logs": str(stack.tmp),
    }


def markdown(result: dict[str, Any]) -> str:
    setup, steps = result["setup"], result["steps"]
    sizes = [f"{s['stored']:,} stored" for s in steps]
    rows = [
        ["`POST /api/messages/rcs/send`, req/s"] + [harness.fmt(s["accept_req_per_s"]) for s in steps],
        ["… its p50 / p99"] + [f"{s['accept_p50_ms']} / {s['accept_p99_ms']} ms" for s in steps],
    ]
    names = [c["case"] for c in next((s["cases"] for s in steps if s["cases"]), [])]
    for name in names:
        cells = []
        for s in steps:
            c = next((c for c in s["cases"] if c["case"] == name), None)
            cells.append(harness.NA if c is None else f"{c['rcsgate_p50_ms']} / **{c['rcsgate_p99_ms']}** ms")
        rows.append([f"`GET /api/messages` {name}, p50 / p99", *cells])
    lines = [
        harness.measured_on("PostgreSQL", result),
        f"Command: `{result['command']}`. Accept: {setup['accept']}, {setup['duration_s']:g} s per size. "
        f"Listing: {setup['listing']}, {setup['requests_per_case']} requests per case; "
        f"`page[limit]=500` target p99 ≤ {TARGET_PAGE_P99_MS:g} ms. (With no rows stored the listing "
        "cases have nothing to find.)",
        "",
        harness.table(["measure", *sizes], rows),
    ]
    run = result["run"]
    if run:
        p, samples = run["pipeline"], run["samples"]
        total = setup["run_messages"]
        workers = sorted({k for s in samples for k in s if k.startswith("worker")})
        rss_rows = [
            [
                f"{int(f * 100)} % ({(s := at_fraction(samples, total, f))['delivered']:,} delivered, {s['seconds']} s)"
            ]
            + [f"{s[n]} MB" if n in s else harness.NA for n in workers]
            for f in (0.1, 0.25, 0.5, 0.75, 1.0)
        ]
        rss_rows.append(["peak (VmHWM)"] + [f"{p['memory'][n]['peak_rss_mb']} MB" for n in workers])
        lines += [
            "",
            f"Worker memory over a {total:,}-message run on the largest table ({setup['run']}): "
            f"{p['msg_per_s']} msg/s, {p['seconds']} s from the first campaign; resident memory (VmRSS) of "
            "each worker when that share of the run's `delivered` webhooks had come in (seconds from the "
            "workers' start):",
            "",
            harness.table(["point of the run", *workers], rss_rows),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = harness.new_parser(__doc__)
    parser.add_argument(
        "--sizes",
        type=lambda s: sorted(int(x) for x in s.split(",")),
        default=[0, 1_000_000, 5_000_000],
        help="stored messages at each step, comma-separated",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of accept load per size")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring the accept")
    parser.add_argument("--requests", type=int, default=200, help="listing requests per case")
    parser.add_argument(
        "--run-messages", type=int, default=1_000_000, help="messages of the worker run (0: none)"
    )
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling interval")
    harness.add_run_options(parser, "smoke run: sizes 0 and 20,000, 2 s of load, 20,000-message run")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.duration, args.warmup, args.requests, args.run_messages = (
            [0, 20_000],
            2.0,
            1.0,
            20,
            20_000,
        )
        args.sample_seconds = 1.0
    result = asyncio.run(bench(args))
    harness.finish(args, result, "scale", markdown)


if __name__ == "__main__":
    main()
