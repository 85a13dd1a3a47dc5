"""Single-send accept benchmark: throughput and p50/p99 latency of `POST /api/messages/rcs/send` at
64 concurrent connections, against a baseline measured in the same run.

Setups (by database):
  - SQLite (default): `rcsgate serve`, the embedded process (API + dispatcher + simulator: the
    dispatcher sends the accepted messages while the load runs, as it would in production).
    Baseline: bench/baseline_app.py, one process, grouped-commit SQLite writer.
  - PostgreSQL (--database-url): `rcsgate api --workers 2` (uvicorn, 2 processes on one port);
    the dispatcher is OFF (no `rcsgate worker`), unless --with-worker starts one.
    Baseline: bench/baseline_app.py --workers 2, asyncpg pool, one INSERT per request.

The load generator (bench/loadgen.py, aiohttp on uvloop) runs as its own process on the same
machine; its CPU share (os.times of its own process) is reported, as are the server processes' and
the whole machine's (from /proc). Rounds alternate baseline and rcsgate, each on a freshly started
server; the median round (by throughput) of each is reported, with ratios rcsgate / baseline.

Usage: python bench/single_send.py [--database-url URL] [--quick] [--json] [--update-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import baseline_app
import harness
from harness import Proc, Stack

LOADGEN = str(Path(__file__).resolve().parent / "loadgen.py")
BASELINE_APP = str(Path(__file__).resolve().parent / "baseline_app.py")
TARGET_RPS = {"sqlite": 3000.0, "postgresql": 2000.0}
TARGET_RATIO = 0.6


async def run_load(
    url: str, headers: list[str], args: argparse.Namespace, first_number: int, pids: dict[str, int]
) -> dict[str, Any]:
    argv = [
        sys.executable,
        LOADGEN,
        "--url",
        url,
        "--concurrency",
        str(args.concurrency),
        "--warmup",
        str(args.warmup),
        "--duration",
        str(args.duration),
        "--first-number",
        str(first_number),
    ]
    for h in headers:
        argv += ["--header", h]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    cpu = harness.CpuWindow(pids=pids)
    last = b""
    async for line in proc.stdout:
        text = line.strip()
        if text == b"MEASURE_START":
            cpu.start()
        elif text == b"MEASURE_END":
            cpu.stop()
        elif text:
            last = text
    if await proc.wait() != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(last)
    result["server_cpu_cores"] = round(sum(v for k, v in cpu.cores.items() if k != "loadgen"), 2)
    result["machine_busy_cores"] = cpu.machine_busy_cores
    result["process_cores"] = cpu.cores
    return result


async def measure_rcsgate(
    stack: Stack, args: argparse.Namespace, api_key: str, first_number: int
) -> dict[str, Any]:
    procs: list[Proc] = []
    if stack.kind == "sqlite":
        procs.append(stack.start("serve", "serve"))
    else:
        procs.append(stack.start("api", "api", "--workers", str(args.api_workers)))
        if args.with_worker:
            procs.append(stack.start("worker", "worker"))
    try:
        await harness.wait_ready(stack.base, procs)
        token = await harness.bearer(stack.base, api_key)
        pids = {p.name: p.pid for p in procs}
        result = await run_load(
            stack.base + "/api/messages/rcs/send",
            [f"Authorization: Bearer {token}"],
            args,
            first_number,
            pids,
        )
        for p in procs:
            p.check_alive()
        result["memory"] = {p.name: p.memory_mb() for p in procs}
        return result
    finally:
        await stack.stop_all()


async def measure_baseline(
    stack: Stack, args: argparse.Namespace, baseline_url: str, first_number: int
) -> dict[str, Any]:
    port = harness.free_port()
    workers = 1 if stack.kind == "sqlite" else args.api_workers
    proc = Proc.spawn(
        "baseline",
        [
            sys.executable,
            BASELINE_APP,
            "--database-url",
            baseline_url,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=stack.env,
        log_dir=stack.tmp,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await harness.wait_ready(base, [proc])
        result = await run_load(
            base + "/api/messages/rcs/send",
            ["Authorization: Bearer baseline"],
            args,
            first_number,
            {"baseline": proc.pid},
        )
        proc.check_alive()
        result["memory"] = {"baseline": proc.memory_mb()}
        return result
    finally:
        await proc.stop()


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round by throughput (all figures of one real round, not a mix)."""
    ordered = sorted(rounds, key=lambda r: float(r["req_per_s"]))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["req_per_s_all_rounds"] = [r["req_per_s"] for r in rounds]
    chosen["req_per_s_median"] = statistics.median(float(r["req_per_s"]) for r in rounds)
    return chosen


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(args.database_url)
    demo = await stack.create()
    baseline_url = (
        f"sqlite:///{stack.tmp / 'baseline.db'}" if stack.kind == "sqlite" else harness.pg_dsn(stack.url)
    )
    await baseline_app.create_schema(baseline_url)
    rounds: dict[str, list[dict[str, Any]]] = {"baseline": [], "rcsgate": []}
    first_number = 0
    for _ in range(args.rounds):
        for which in ("baseline", "rcsgate"):
            if which == "baseline":
                r = await measure_baseline(stack, args, baseline_url, first_number)
            else:
                r = await measure_rcsgate(stack, args, demo.api_key, first_number)
            print(
                f"{which}: {r['req_per_s']} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                f"statuses {r['statuses']}",
                file=sys.stderr,
            )
            rounds[which].append(r)
            first_number += int(r["numbers_used"]) + 1000
    ours, base = summary(rounds["rcsgate"]), summary(rounds["baseline"])
    rcsgate_setup = (
        "rcsgate serve (API + dispatcher + simulator in one process)"
        if stack.kind == "sqlite"
        else f"rcsgate api --workers {args.api_workers}"
        + (" + 1 rcsgate worker (dispatcher on)" if args.with_worker else " (dispatcher off: no worker)")
    )
    baseline_setup = (
        "bench/baseline_app.py: Starlette + pydantic on uvicorn, 1 process, grouped-commit SQLite writer"
        if stack.kind == "sqlite"
        else f"bench/baseline_app.py --workers {args.api_workers}: Starlette + pydantic on uvicorn, "
        "asyncpg pool, one INSERT per request"
    )
    return {
        **harness.result_head("single_send", stack.kind, args.quick),
        "setup": {
            "rcsgate": rcsgate_setup,
            "baseline": baseline_setup,
            "concurrency": args.concurrency,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "auth": "Authorization: Bearer (rcsgate); header presence only (baseline)",
        },
        "rcsgate": ours,
        "baseline": base,
        "ratios": {
            "throughput": round(harness.ratio(ours["req_per_s"], base["req_per_s"]), 3),
            "p50": round(harness.ratio(ours["p50_ms"], base["p50_ms"]), 3),
            "p99": round(harness.ratio(ours["p99_ms"], base["p99_ms"]), 3),
        },
        "targets": {
            "req_per_s": TARGET_RPS[stack.kind],
            "ratio_to_baseline": TARGET_RATIO,
            "met": ours["req_per_s"] >= TARGET_RPS[stack.kind]
            and harness.ratio(ours["req_per_s"], base["req_per_s"]) >= TARGET_RATIO,
        },
        "logs": str(stack.tmp),
    }


def markdown(result: dict[str, Any]) -> str:
    ours, base, setup = result["rcsgate"], result["baseline"], result["setup"]
    target = result["targets"]["req_per_s"]
    tput_ratio = result["ratios"]["throughput"]
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[result["database"]]

    def non200(r: dict[str, Any]) -> str:
        bad = {k: v for k, v in r["statuses"].items() if k != "200"} | r["client_errors"]
        return ", ".join(f"{k}: {v}" for k, v in bad.items()) or "0"

    rows = [
        [
            "accepted requests/s",
            f"**{harness.fmt(ours['req_per_s'], 0)}** (rounds: {', '.join(harness.fmt(v, 0) for v in ours['req_per_s_all_rounds'])})",
            f"{harness.fmt(base['req_per_s'], 0)} (rounds: {', '.join(harness.fmt(v, 0) for v in base['req_per_s_all_rounds'])})",
            f"**{tput_ratio:.2f}**",
            f"≥ {target:,.0f} req/s {harness.check(ours['req_per_s'] >= target)}; "
            f"ratio ≥ {TARGET_RATIO} {harness.check(tput_ratio >= TARGET_RATIO)}",
        ],
        [
            "latency p50",
            f"{ours['p50_ms']} ms",
            f"{base['p50_ms']} ms",
            f"{result['ratios']['p50']:.2f}",
            harness.NA,
        ],
        [
            "latency p99",
            f"{ours['p99_ms']} ms",
            f"{base['p99_ms']} ms",
            f"{result['ratios']['p99']:.2f}",
            harness.NA,
        ],
        [
            "server CPU (cores)",
            f"{ours['server_cpu_cores']}",
            f"{base['server_cpu_cores']}",
            f"{harness.ratio(ours['server_cpu_cores'], base['server_cpu_cores']):.2f}",
            harness.NA,
        ],
        [
            "load generator CPU (cores, os.times)",
            f"{ours['loadgen_cpu_cores']}",
            f"{base['loadgen_cpu_cores']}",
            harness.NA,
            harness.NA,
        ],
        [
            f"machine busy (cores of {result['machine']['nproc']})",
            f"{ours['machine_busy_cores']}",
            f"{base['machine_busy_cores']}",
            harness.NA,
            harness.NA,
        ],
        ["non-200 answers / client errors", non200(ours), non200(base), harness.NA, "0"],
    ]
    return "\n".join(
        [
            harness.measured_on(label, result),
            f"Command: `{result['command']}`. rcsgate: {setup['rcsgate']}. Baseline: {setup['baseline']}. "
            f"{setup['concurrency']} connections, {setup['warmup_s']:g} s warm-up, {setup['duration_s']:g} s "
            f"measured, {setup['rounds']} alternating rounds, median round shown.",
            "",
            harness.table(harness.VS_BASELINE, rows),
        ]
    )


def main() -> None:
    parser = harness.new_parser(__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline/rcsgate rounds")
    parser.add_argument("--api-workers", type=int, default=2, help="PostgreSQL: API processes")
    parser.add_argument("--with-worker", action="store_true", help="PostgreSQL: also run one rcsgate worker")
    harness.add_run_options(parser, "smoke run: 1 round, 1 s warm-up, 3 s measured")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.warmup, args.duration = 1, 1.0, 3.0
    result = asyncio.run(bench(args))
    harness.finish(args, result, "single_send", markdown)


if __name__ == "__main__":
    main()
