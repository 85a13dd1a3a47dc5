"""Closed-loop HTTP load generator for bench/single_send.py, run as its own process.

C connections (aiohttp, keep-alive), each sending `POST /api/messages/rcs/send` back to back with a
distinct phone number per request (rcsgate refuses the same body twice within 10 s). After a warm-up
it measures for a fixed time: completions, status codes, latency percentiles of the requests that
completed inside the window, and this process's own CPU share (os.times, user + system) in that
window. Prints `MEASURE_START` and `MEASURE_END` lines when the window opens and closes (the
orchestrator samples the server's CPU there), then one JSON line of results.

Usage: python bench/loadgen.py --url URL --header 'Authorization: Bearer …' [--concurrency 64]
       [--warmup 5] [--duration 20] [--first-number 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

SENDER = "demo_agent"


def ua_number(i: int) -> str:
    # Same numbering as harness.ua_number: skip the simulator's special …999x suffixes.
    n = i + (i // 9990) * 10
    return f"3806{n:08d}"


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.next_number = args.first_number
        self.window: tuple[float, float] = (math.inf, math.inf)
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.stop = False
        self.sent = 0

    def body(self) -> bytes:
        i = self.next_number
        self.next_number += 1
        return json.dumps(
            {"phone": {"number": ua_number(i)}, "sender": SENDER, "options": {"text": f"Benchmark {i}"}}
        ).encode()

    async def connection(self, session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        while not self.stop:
            data = self.body()
            started = time.perf_counter()
            status = "error"
            try:
                async with session.post(self.args.url, data=data, headers=headers) as r:
                    await r.read()
                    status = str(r.status)
            except (aiohttp.ClientError, OSError) as exc:
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)
            ended = time.perf_counter()
            self.sent += 1
            if self.window[0] <= ended <= self.window[1]:
                self.statuses[status] += 1
                if status == "200":
                    self.latencies.append(ended - started)

    async def run(self) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        for h in self.args.header:
            name, _, value = h.partition(":")
            headers[name.strip()] = value.strip()
        connector = aiohttp.TCPConnector(limit=self.args.concurrency, limit_per_host=0, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks = [
                asyncio.create_task(self.connection(session, headers)) for _ in range(self.args.concurrency)
            ]
            await asyncio.sleep(self.args.warmup)
            print("MEASURE_START", flush=True)
            t0 = time.perf_counter()
            cpu0 = os.times()
            self.window = (t0, t0 + self.args.duration)
            await asyncio.sleep(self.args.duration)
            t1 = time.perf_counter()
            cpu1 = os.times()
            print("MEASURE_END", flush=True)
            self.stop = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
        wall = t1 - t0
        ordered = sorted(self.latencies)
        ok = len(ordered)
        return {
            "concurrency": self.args.concurrency,
            "window_seconds": round(wall, 3),
            "completed": sum(self.statuses.values()),
            "ok": ok,
            "statuses": dict(self.statuses),
            "client_errors": dict(self.errors),
            "req_per_s": round(ok / wall, 1),
            "p50_ms": round(percentile(ordered, 50) * 1000, 2),
            "p90_ms": round(percentile(ordered, 90) * 1000, 2),
            "p99_ms": round(percentile(ordered, 99) * 1000, 2),
            "mean_ms": round(sum(ordered) / ok * 1000, 2) if ok else math.nan,
            "loadgen_cpu_cores": round(
                ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall if wall else 0.0, 3
            ),
            "numbers_used": self.next_number - self.args.first_number,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--first-number", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(Load(args).run())
    else:
        result = uvloop.run(Load(args).run())
    print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
