"""Pipeline benchmark: N messages accepted → sent → delivered → `delivered` status webhook
acknowledged by a local receiver, with the zero-latency simulator, against a baseline measured in
the same run.

  - Accept: campaigns of 5000 phones (`POST /api/campaigns/rcs/send`, start now), posted back to
    back, each as soon as the previous one is accepted. Every number is distinct and takes the
    simulator's plain path (sent → delivered → read).
  - End: the receiver (aiohttp, in this process; it answers 200 at once) has acknowledged the
    `delivered` webhook of every one of the N messages. msg/s = N / (end - first POST).
    rcsgate also sends each message's `read` webhook; those still arriving at the end are not waited for.

Setups (by database):
  - SQLite (default): one `rcsgate serve` (API, dispatcher, simulator and webhook sender).
  - PostgreSQL (--database-url): `rcsgate api` + 2 `rcsgate worker` processes (--workers).
Memory: peak RSS (VmHWM from /proc/<pid>/status, read just before stopping) of each process.

Baseline (bench/baseline_pipeline.py, one process, same database, same receiver): the minimal
state changes and webhook POSTs for the same N messages on the raw driver, in batches of the
campaign size (see its docstring for exactly what it does and leaves out). It is run first, then
rcsgate; the ratio is rcsgate msg/s ÷ baseline msg/s.

Usage: python bench/pipeline.py [--database-url URL] [--messages 100000] [--quick] [--json] [--update-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import harness
from harness import Proc, Receiver, Stack

BASELINE = str(Path(__file__).resolve().parent / "baseline_pipeline.py")
TARGET_MSG_S = {"sqlite": 1000.0, "postgresql": 1500.0}
TARGET_WORKER_RSS_MB = 300.0
STALL_SECONDS = 120.0


async def run_baseline(stack: Stack, receiver: Receiver, args: argparse.Namespace) -> dict[str, Any]:
    url = f"sqlite:///{stack.tmp / 'baseline.db'}" if stack.kind == "sqlite" else harness.pg_dsn(stack.url)
    receiver.reset(args.messages)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        BASELINE,
        "--database-url",
        url,
        "--hook",
        receiver.url,
        "--messages",
        str(args.messages),
        "--batch",
        str(args.campaign_size),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"baseline pipeline failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    result["receiver_delivered"] = len(receiver.delivered)
    if len(receiver.delivered) < args.messages:
        raise RuntimeError(f"baseline: only {len(receiver.delivered)} of {args.messages} webhooks arrived")
    return result


async def run_rcsgate(
    stack: Stack, receiver: Receiver, args: argparse.Namespace, api_key: str, *, first_number: int = 0
) -> dict[str, Any]:
    """One run of rcsgate's pipeline; ``first_number`` shifts the recipients, so a second run in the
    same installation sends other numbers (and other request bodies)."""
    procs: list[Proc] = []
    workers: list[Proc] = []
    if stack.kind == "sqlite":
        procs.append(stack.start("serve", "serve"))
        workers = procs
    else:
        procs.append(stack.start("api", "api"))
        for i in range(args.workers):
            workers.append(stack.start(f"worker{i + 1}", "worker"))
        procs += workers
    try:
        await harness.wait_ready(stack.base, procs)
        token = await harness.bearer(stack.base, api_key)
        receiver.reset(args.messages)
        cpu = harness.CpuWindow(pids={p.name: p.pid for p in procs})
        self_cpu = harness.SelfCpu()
        headers = {"Authorization": f"Bearer {token}"}
        accept_ms: list[float] = []
        timeout = aiohttp.ClientTimeout(total=300)
        cpu.start()
        started = time.perf_counter()
        async with aiohttp.ClientSession(base_url=stack.base, headers=headers, timeout=timeout) as session:
            for offset in range(0, args.messages, args.campaign_size):
                size = min(args.campaign_size, args.messages - offset)
                body = json.dumps(
                    {
                        "phones": [
                            {"number": harness.ua_number(first_number + offset + i)} for i in range(size)
                        ],
                        "sender": "demo_agent",
                        "options": {"text": "Benchmark"},
                    }
                )
                t = time.perf_counter()
                async with session.post(
                    "/api/campaigns/rcs/send", data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    text = await r.text()
                    if r.status != 200:
                        raise RuntimeError(f"campaign POST answered {r.status}: {text[:500]}")
                accept_ms.append((time.perf_counter() - t) * 1000)
        accepted_at = time.perf_counter() - started
        # Give up when no new `delivered` webhook has arrived for STALL_SECONDS.
        while not receiver.done.is_set():
            for p in procs:
                p.check_alive()
            try:
                await asyncio.wait_for(receiver.done.wait(), timeout=1.0)
            except TimeoutError:
                last = max(receiver.last_delivered_at, started + accepted_at)
                if time.perf_counter() - last > STALL_SECONDS:
                    raise RuntimeError(
                        f"rcsgate: {len(receiver.delivered)} of {args.messages} delivered webhooks, "
                        f"none for {STALL_SECONDS:.0f} s; logs in {stack.tmp}"
                    ) from None
        seconds = receiver.last_delivered_at - started
        cpu.stop()
        bench_cores = self_cpu.cores()
        memory = {p.name: p.memory_mb() for p in procs}
        return {
            "messages": args.messages,
            "seconds": round(seconds, 3),
            "msg_per_s": round(args.messages / seconds, 1),
            "accept_seconds": round(accepted_at, 3),
            "campaign_accept_ms_median": round(harness.percentile(accept_ms, 50), 1),
            "campaign_accept_ms_max": round(max(accept_ms), 1),
            "webhooks_received": receiver.posts,
            "webhook_statuses": dict(receiver.statuses),
            "duplicate_delivered_webhooks": receiver.duplicate_delivered,
            "memory": memory,
            "worker_peak_rss_mb": max(float(memory[w.name]["peak_rss_mb"] or 0) for w in workers),
            "process_cores": cpu.cores,
            "machine_busy_cores": cpu.machine_busy_cores,
            "bench_process_cores": round(bench_cores, 2),
        }
    finally:
        await stack.stop_all()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(args.database_url)
    demo = await stack.create()
    receiver = Receiver()
    hook = await receiver.start()
    stack.cli("accounts", "set-callback-url", str(demo.account_id), hook)
    try:
        base = await run_baseline(stack, receiver, args)
        print(f"baseline: {base['msg_per_s']} msg/s ({base['seconds']} s)", file=sys.stderr)
        ours = await run_rcsgate(stack, receiver, args, demo.api_key)
        print(
            f"rcsgate: {ours['msg_per_s']} msg/s ({ours['seconds']} s), worker peak RSS "
            f"{ours['worker_peak_rss_mb']} MB",
            file=sys.stderr,
        )
    finally:
        await receiver.stop()
    r = harness.ratio(ours["msg_per_s"], base["msg_per_s"])
    return {
        **harness.result_head("pipeline", stack.kind, args.quick),
        "setup": {
            "rcsgate": "rcsgate serve"
            if stack.kind == "sqlite"
            else f"rcsgate api + {args.workers} rcsgate worker processes",
            "baseline": "bench/baseline_pipeline.py (raw driver, 1 process)",
            "messages": args.messages,
            "campaign_size": args.campaign_size,
        },
        "rcsgate": ours,
        "baseline": base,
        "ratios": {"throughput": round(r, 3)},
        "targets": {
            "msg_per_s": TARGET_MSG_S[stack.kind],
            "worker_peak_rss_mb": TARGET_WORKER_RSS_MB,
            "met": ours["msg_per_s"] >= TARGET_MSG_S[stack.kind]
            and ours["worker_peak_rss_mb"] <= TARGET_WORKER_RSS_MB,
        },
        "logs": str(stack.tmp),
    }


def markdown(result: dict[str, Any]) -> str:
    ours, base, setup = result["rcsgate"], result["baseline"], result["setup"]
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[result["database"]]
    target = result["targets"]["msg_per_s"]
    rss_target = result["targets"]["worker_peak_rss_mb"]
    procs = ", ".join(
        f"{name} {mem['peak_rss_mb']} MB ({ours['process_cores'].get(name, 0)} cores)"
        for name, mem in ours["memory"].items()
    )
    rows = [
        [
            f"{setup['messages']:,} messages: accepted → delivered webhook acked",
            f"**{harness.fmt(ours['msg_per_s'])} msg/s** ({ours['seconds']} s)",
            f"{harness.fmt(base['msg_per_s'])} msg/s ({base['seconds']} s)",
            f"**{result['ratios']['throughput']:.2f}**",
            f"≥ {target:,.0f} msg/s {harness.check(ours['msg_per_s'] >= target)}",
        ],
        [
            "worker peak RSS (largest worker process)",
            f"{ours['worker_peak_rss_mb']} MB",
            f"{base['peak_rss_mb']} MB",
            f"{harness.ratio(ours['worker_peak_rss_mb'], base['peak_rss_mb']):.2f}",
            f"≤ {rss_target:.0f} MB {harness.check(ours['worker_peak_rss_mb'] <= rss_target)}",
        ],
        [
            "all campaigns accepted after",
            f"{ours['accept_seconds']} s (median POST {ours['campaign_accept_ms_median']} ms)",
            harness.NA,
            harness.NA,
            harness.NA,
        ],
        [
            "webhooks received by the end (by status); duplicate `delivered`",
            ", ".join(f"{k} {v:,}" for k, v in ours["webhook_statuses"].items())
            + f"; duplicates {ours['duplicate_delivered_webhooks']}",
            f"delivered {base['receiver_delivered']:,}",
            harness.NA,
            "duplicates 0",
        ],
        [
            f"machine busy (cores of {result['machine']['nproc']})",
            f"{ours['machine_busy_cores']}",
            f"{base['cpu_cores']} (baseline process)",
            harness.NA,
            harness.NA,
        ],
    ]
    return "\n".join(
        [
            harness.measured_on(label, result),
            f"Command: `{result['command']}`. rcsgate: {setup['rcsgate']}; campaigns of "
            f"{setup['campaign_size']:,} phones. Baseline: {setup['baseline']}. Per process (peak RSS, CPU): {procs}; "
            f"benchmark process (receiver + client) {ours['bench_process_cores']} cores.",
            "",
            harness.table(harness.VS_BASELINE, rows),
        ]
    )


def main() -> None:
    parser = harness.new_parser(__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--campaign-size", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2, help="PostgreSQL: rcsgate worker processes")
    harness.add_run_options(parser, "smoke run: 2000 messages in campaigns of 1000")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.campaign_size = 2000, 1000
    result = asyncio.run(bench(args))
    harness.finish(args, result, "pipeline", markdown)


if __name__ == "__main__":
    main()
