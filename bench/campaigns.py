"""Campaign benchmarks (issue: campaigns). Runs a real `rcsgate serve` process with the zero-latency
simulator and a local webhook receiver, then measures:

  1. accepting a 5000-recipient phones campaign (median of N runs; scheduled a day ahead so they don't run)
  2. one instant 5000-recipient campaign: from accept until every message is delivered and its
     `delivered` status webhook has been acknowledged by the receiver
  3. GET /api/campaigns/{id}/detail on that finished campaign (median of N)

Usage: python bench/campaigns.py [--database-url URL] [--runs 10] [--recipients 5000] [--json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from aiohttp import web

RCSGATE = str(Path(sys.executable).parent / "rcsgate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(env: dict[str, str], *args: str) -> str:
    return subprocess.run([RCSGATE, *args], env=env, check=True, capture_output=True, text=True).stdout


class Receiver:
    def __init__(self) -> None:
        self.delivered: set[int] = set()
        self.count = 0
        self.done = asyncio.Event()
        self.expect = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.count += 1
        if body.get("status") == "delivered":
            self.delivered.add(int(body["id"]))
            if self.expect and len(self.delivered) >= self.expect:
                self.done.set()
        return web.Response(status=200)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="rcsgate-bench-"))
    port = free_port()
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env.update(
        RCSGATE_DATABASE_URL=url,
        RCSGATE_VAR_DIR=str(tmp),
        RCSGATE_PORT=str(port),
        RCSGATE_JWT_SECRET="bench-" + "x" * 40,
        RCSGATE_SIMULATOR_ZERO_LATENCY="true",
        RCSGATE_WEBHOOKS_ALLOW_PRIVATE="true",
        RCSGATE_RATE_LIMIT="100000/second",
        RCSGATE_LOG_LEVEL="WARNING",
        RCSGATE_DUPLICATE_WINDOW_SECONDS="0",
    )
    if not url.startswith("sqlite"):
        # The benchmark owns this database: start from an empty schema.
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()
    run(env, "db", "upgrade")
    demo = json.loads(run(env, "demo", "--json"))
    run(env, "accounts", "topup", str(demo["account_id"]), "1000000")

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    run(env, "accounts", "set-callback-url", str(demo["account_id"]), f"http://127.0.0.1:{hook_port}/hook")

    server = subprocess.Popen(
        [RCSGATE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers={"X-API-KEY": demo["api_key"]}, timeout=60) as c:
            for _ in range(200):
                try:
                    if (await c.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)

            def body(offset: int, start_at: str | None) -> dict[str, Any]:
                phones = [{"number": f"3806{offset + i:08d}"} for i in range(args.recipients)]
                b: dict[str, Any] = {
                    "phones": phones,
                    "sender": "demo_agent",
                    "options": {"text": "Benchmark"},
                }
                if start_at:
                    b["start_at"] = start_at
                return b

            tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
            accept_ms: list[float] = []
            accept_profiler = None
            if args.profile_accept:
                accept_profiler = subprocess.Popen(
                    [
                        args.py_spy,
                        "record",
                        "--pid",
                        str(server.pid),
                        "--duration",
                        str(max(2, args.runs)),
                        "--rate",
                        "500",
                        "--format",
                        "raw",
                        "--output",
                        args.profile_accept,
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(0.5)
            for run_no in range(args.runs):
                payload = body((run_no + 1) * 100_000, tomorrow)
                started = time.perf_counter()
                r = await c.post("/api/campaigns/rcs/send", json=payload)
                accept_ms.append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200, r.text

            if accept_profiler is not None:
                accept_profiler.wait(timeout=60)
            receiver.expect = args.recipients
            profiler = None
            if args.profile:
                # py-spy (pip install py-spy) samples the server during the pipeline run.
                profiler = subprocess.Popen(
                    [
                        args.py_spy,
                        "record",
                        "--pid",
                        str(server.pid),
                        "--duration",
                        "15",
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        "--output",
                        args.profile,
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            started = time.perf_counter()
            r = await c.post("/api/campaigns/rcs/send", json=body(0, None))
            assert r.status_code == 200, r.text
            campaign_id = r.json()["data"]["id"]
            await asyncio.wait_for(receiver.done.wait(), timeout=300)
            pipeline_s = time.perf_counter() - started
            if profiler is not None:
                profiler.wait(timeout=60)

            detail_ms: list[float] = []
            for _ in range(args.runs * 10):
                t = time.perf_counter()
                r = await c.get(f"/api/campaigns/{campaign_id}/detail")
                detail_ms.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        await runner.cleanup()

    return {
        "database": "sqlite" if url.startswith("sqlite") else "postgresql",
        "recipients": args.recipients,
        "accept_median_ms": round(statistics.median(accept_ms), 1),
        "accept_p90_ms": round(sorted(accept_ms)[int(len(accept_ms) * 0.9) - 1], 1),
        "pipeline_seconds": round(pipeline_s, 2),
        "pipeline_msgs_per_s": round(args.recipients / pipeline_s, 1),
        "detail_median_ms": round(statistics.median(detail_ms), 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL URL; default: a temporary SQLite file"
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 runs of 500 recipients")
    parser.add_argument(
        "--profile", default=None, help="write a py-spy profile (collapsed stacks) of the pipeline run"
    )
    parser.add_argument("--profile-accept", default=None, help="write a py-spy profile of the accept runs")
    parser.add_argument("--py-spy", default="py-spy", help="path of the py-spy binary")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.recipients = 2, 500
    result = asyncio.run(bench(args))
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
