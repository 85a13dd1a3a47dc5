"""Google's event pushes into `rcsgate api`, alone: how fast one API process stores and applies them,
and what each costs it in CPU.

The RBM path of bench/pipeline_rbm.py ends with a drain in which the API process applies the
backlog of DELIVERED and READ events while the machine is not fully busy. This measures that
stage by itself (PostgreSQL only):

  1. A local RBM (`rcsgate simulator --rbm --zero-latency`) with no webhook URL: it keeps the
     events it owes.
  2. `rcsgate api` + 2 `rcsgate worker` send N messages (campaigns of 5,000) through an RBM
     connector; once all are `sent`, the workers are stopped.
  3. The local RBM's webhook is set to `/api/upstream/rbm/bench`: it pushes the 2N events
     (--push-concurrency at once), and the API stores and applies each one (`read` at the end).

Per round: pushes a second from the webhook being set until every message is `read`, the API
process's CPU per push, and the cores used by the API, the local RBM and the whole machine. Each
round sends new numbers into the same installation.

Usage: python bench/rbm_ingress.py --database-url URL [--messages 20000] [--rounds 3]
       [--push-concurrency 256] [--quick] [--json] [--update-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import harness
import pipeline_rbm
from harness import Stack

CAMPAIGN_SIZE = 5000
# A round gives up when the messages have not all reached a state for this long.
STALL_SECONDS = 120.0


async def _wait_count(pg: asyncpg.Connection, statuses: tuple[str, ...], count: int) -> None:
    deadline = time.monotonic() + STALL_SECONDS
    while True:
        done = await pg.fetchval(
            "SELECT count(*) FROM messages WHERE status = ANY($1::text[])", list(statuses)
        )
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {count} messages reached {statuses} in {STALL_SECONDS:.0f} s")
        await asyncio.sleep(0.05)


async def _set_webhook(session: aiohttp.ClientSession, rbm_url: str, url: str | None) -> None:
    async with session.put(rbm_url + "/v1/local/webhook", json={"url": url}) as r:
        if r.status >= 300:
            raise RuntimeError(f"local RBM webhook: {r.status} {await r.text()}")


async def _round(
    stack: Stack,
    pg: asyncpg.Connection,
    session: aiohttp.ClientSession,
    rbm: harness.Proc,
    rbm_url: str,
    api_key: str,
    args: argparse.Namespace,
    number: int,
) -> dict[str, Any]:
    await _set_webhook(session, rbm_url, None)
    api = stack.start("api", "api")
    workers = [stack.start(f"worker{i + 1}", "worker") for i in range(2)]
    try:
        await harness.wait_ready(stack.base, [api, *workers])
        token = await harness.bearer(stack.base, api_key)
        first = number * args.messages
        for offset in range(0, args.messages, CAMPAIGN_SIZE):
            size = min(CAMPAIGN_SIZE, args.messages - offset)
            body = {
                "phones": [{"number": harness.ua_number(first + offset + i)} for i in range(size)],
                "sender": "demo_agent",
                "options": {"text": "Benchmark"},
            }
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(stack.base + "/api/campaigns/rcs/send", json=body, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"campaign POST answered {r.status}: {(await r.text())[:300]}")
        total = (number + 1) * args.messages
        await _wait_count(pg, ("sent", "delivered", "read"), total)
        for worker in workers:
            await worker.stop()
        await pg.execute("CHECKPOINT")  # the round's own writes, not the sends', are what it pays for
        cpu = harness.CpuWindow(pids={"api": api.pid, "local_rbm": rbm.pid})
        cpu.start()
        await _set_webhook(session, rbm_url, f"{stack.base}/api/upstream/rbm/bench")
        await _wait_count(pg, ("read",), total)
        cpu.stop()
    finally:
        await stack.stop_all()
    pushes = 2 * args.messages
    return {
        "pushes": pushes,
        "seconds": round(cpu.wall, 3),
        "pushes_per_s": round(pushes / cpu.wall, 1),
        "api_cpu_us_per_push": round(1e6 * cpu.cores["api"] * cpu.wall / pushes, 1),
        "api_cores": cpu.cores["api"],
        "local_rbm_cores": cpu.cores["local_rbm"],
        "machine_busy_cores": cpu.machine_busy_cores,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(args.database_url)
    demo = await stack.create()
    receiver = harness.Receiver()
    hook = await receiver.start()
    stack.cli("accounts", "set-callback-url", str(demo.account_id), hook)
    rbm: harness.Proc | None = None
    pg = await asyncpg.connect(harness.pg_dsn(args.database_url))
    rounds: list[dict[str, Any]] = []
    try:
        rbm, rbm_url = await pipeline_rbm.start_local_rbm(stack, args)
        pipeline_rbm.route_demo_agent(stack, rbm_url)
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for number in range(args.rounds):
                receiver.reset(args.messages)
                result = await _round(stack, pg, session, rbm, rbm_url, demo.api_key, args, number)
                print(f"round {number + 1}: {result}", file=sys.stderr)
                rounds.append(result)
    finally:
        await pg.close()
        if rbm is not None:
            await rbm.stop()
        await receiver.stop()
    return {
        **harness.result_head("rbm_ingress", stack.kind, args.quick),
        "setup": {
            "rcsgate": "rcsgate api (its workers stopped once every message is sent)",
            "local_rbm": f"rcsgate simulator --rbm --zero-latency --rbm-push-concurrency {args.push_concurrency}",
            "messages_per_round": args.messages,
            "pushes_per_round": 2 * args.messages,
        },
        "rounds": rounds,
        "median": {
            key: statistics.median(r[key] for r in rounds)
            for key in (
                "pushes_per_s",
                "api_cpu_us_per_push",
                "api_cores",
                "local_rbm_cores",
                "machine_busy_cores",
            )
        },
        "logs": str(stack.tmp),
    }


def markdown(result: dict[str, Any]) -> str:
    setup = result["setup"]
    rows = [
        [
            str(i + 1),
            harness.fmt(r["pushes_per_s"]),
            harness.fmt(r["api_cpu_us_per_push"]),
            str(r["api_cores"]),
            str(r["local_rbm_cores"]),
            str(r["machine_busy_cores"]),
        ]
        for i, r in enumerate(result["rounds"])
    ]
    return "\n".join(
        [
            harness.measured_on("PostgreSQL", result),
            f"Command: `{result['command']}`. {setup['pushes_per_round']:,} pushes a round into "
            f"{setup['rcsgate']}, from `{setup['local_rbm']}`.",
            "",
            harness.table(
                [
                    "round",
                    "pushes/s",
                    "API CPU per push (µs)",
                    "API cores",
                    "local RBM cores",
                    "machine busy",
                ],
                rows,
            ),
        ]
    )


def main() -> None:
    parser = harness.new_parser(__doc__)
    parser.add_argument("--messages", type=int, default=20_000, help="messages a round (two pushes each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--push-concurrency", type=int, default=256, help="events the local RBM pushes at once"
    )
    harness.add_run_options(parser, "smoke run: one round of 1000 messages")
    args = parser.parse_args()
    if not args.database_url or harness.is_sqlite(args.database_url):
        parser.error(
            "PostgreSQL only (--database-url): `rcsgate serve` applies pushes beside its own workers"
        )
    if args.quick:
        args.messages, args.rounds = 1000, 1
    result = asyncio.run(bench(args))
    harness.finish(args, result, "rbm_ingress", markdown)


if __name__ == "__main__":
    main()
