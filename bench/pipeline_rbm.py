"""The pipeline through Google RBM: N messages accepted → submitted to the local RBM over HTTP (the
real RBM connector, google-auth tokens) → Google's DELIVERED events pushed back, signed, to the
ingress → `delivered` status webhook acknowledged; against the simulator path in the same run.

  - Simulator path: bench/pipeline.py's run (the zero-latency embedded simulator), no connector.
  - RBM path: the same campaigns, after `rcsgate connectors add-rbm` and `rcsgate agents
    set-connector` route the demo agent to a local RBM (`rcsgate simulator --rbm --zero-latency`,
    its own process, pushing up to --push-concurrency events at once, as Pub/Sub push does).
  - The ratio is RBM msg/s ÷ simulator msg/s (issue target ≥ 0.6).

Setups as bench/pipeline.py: SQLite `rcsgate serve`; PostgreSQL (--database-url) `rcsgate api` +
--workers `rcsgate worker` processes, with a VACUUM between the two paths (the server may run
without autovacuum, and the second path would read past the first one's dead rows).

Usage: python bench/pipeline_rbm.py [--database-url URL] [--messages 100000] [--quick] [--json] [--update-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp
import harness
import pipeline
from harness import RCSGATE, Proc, Receiver, Stack

CLIENT_TOKEN = "BENCHCLIENTTOKEN"
TARGET_RATIO = 0.6


async def start_local_rbm(stack: Stack, args: argparse.Namespace) -> tuple[Proc, str]:
    port = harness.free_port()
    key = stack.tmp / "rbm-key.json"
    proc = Proc.spawn(
        "rbm",
        [
            RCSGATE,
            "simulator",
            "--rbm",
            "--zero-latency",
            "--port",
            str(port),
            "--rbm-webhook-url",
            f"{stack.base}/api/upstream/rbm/bench",
            "--rbm-client-token",
            CLIENT_TOKEN,
            "--rbm-key-out",
            str(key),
            "--rbm-push-concurrency",
            str(args.push_concurrency),
            "--log-level",
            "WARNING",
        ],
        env=stack.env,
        log_dir=stack.tmp,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            proc.check_alive()
            try:
                async with session.get(url + "/healthz") as r:
                    if r.status == 200 and key.exists():
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the local RBM did not start")
            await asyncio.sleep(0.1)
    return proc, url


def route_demo_agent(stack: Stack, rbm_url: str) -> None:
    """Route the demo agent through an RBM connector ``bench`` whose upstream is the local RBM."""
    stack.cli(
        "connectors",
        "add-rbm",
        "bench",
        "--agent-id",
        "bench@rbm.goog",
        "--service-account",
        str(stack.tmp / "rbm-key.json"),
        "--api-url",
        rbm_url,
        "--webhook-token",
        CLIENT_TOKEN,
    )
    stack.cli("agents", "set-connector", "1", "bench")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(args.database_url)
    demo = await stack.create()
    receiver = Receiver()
    hook = await receiver.start()
    stack.cli("accounts", "set-callback-url", str(demo.account_id), hook)
    rbm: Proc | None = None
    try:
        simulator = await pipeline.run_rcsgate(stack, receiver, args, demo.api_key)
        print(f"simulator path: {simulator['msg_per_s']} msg/s ({simulator['seconds']} s)", file=sys.stderr)
        if args.database_url:
            # Both paths start without dead rows: the RBM path would otherwise read past the
            # simulator path's (1.2 million dead outbox index entries after 100,000 messages).
            await harness.vacuum_postgres(args.database_url)
        rbm, url = await start_local_rbm(stack, args)
        route_demo_agent(stack, url)
        through_rbm = await pipeline.run_rcsgate(
            stack, receiver, args, demo.api_key, first_number=args.messages
        )
        print(f"RBM path: {through_rbm['msg_per_s']} msg/s ({through_rbm['seconds']} s)", file=sys.stderr)
        rbm_cores = round(harness.cpu_seconds(rbm.pid), 1)
    finally:
        if rbm is not None:
            await rbm.stop()
        await receiver.stop()
    ratio = harness.ratio(through_rbm["msg_per_s"], simulator["msg_per_s"])
    return {
        **harness.result_head("pipeline_rbm", stack.kind, args.quick),
        "setup": {
            "rcsgate": "rcsgate serve"
            if stack.kind == "sqlite"
            else f"rcsgate api + {args.workers} rcsgate worker processes",
            "local_rbm": f"rcsgate simulator --rbm --zero-latency --rbm-push-concurrency {args.push_concurrency}",
            "messages": args.messages,
            "campaign_size": args.campaign_size,
        },
        "simulator": simulator,
        "rbm": through_rbm,
        "rbm_process_cpu_seconds": rbm_cores,
        "ratios": {"rbm_over_simulator": round(ratio, 3)},
        "targets": {"ratio": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
        "logs": str(stack.tmp),
    }


def markdown(result: dict[str, Any]) -> str:
    sim, rbm, setup = result["simulator"], result["rbm"], result["setup"]
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[result["database"]]
    ratio = result["ratios"]["rbm_over_simulator"]
    rows = [
        [
            f"{setup['messages']:,} messages: accepted → delivered webhook acked",
            f"**{harness.fmt(rbm['msg_per_s'])} msg/s** ({rbm['seconds']} s)",
            f"{harness.fmt(sim['msg_per_s'])} msg/s ({sim['seconds']} s)",
            f"**{ratio:.2f}**",
            f"≥ {TARGET_RATIO} {harness.check(ratio >= TARGET_RATIO)}",
        ],
        [
            "machine busy (cores of " + str(result["machine"]["nproc"]) + ")",
            f"{rbm['machine_busy_cores']}",
            f"{sim['machine_busy_cores']}",
            harness.NA,
            harness.NA,
        ],
        [
            "process cores (RBM path)",
            ", ".join(f"{k} {v}" for k, v in rbm["process_cores"].items()),
            ", ".join(f"{k} {v}" for k, v in sim["process_cores"].items()),
            harness.NA,
            harness.NA,
        ],
        [
            "duplicate `delivered` webhooks",
            str(rbm["duplicate_delivered_webhooks"]),
            str(sim["duplicate_delivered_webhooks"]),
            harness.NA,
            "0",
        ],
    ]
    return "\n".join(
        [
            harness.measured_on(label, result),
            f"Command: `{result['command']}`. rcsgate: {setup['rcsgate']}; campaigns of "
            f"{setup['campaign_size']:,} phones. Local RBM: `{setup['local_rbm']}` (its own process, on the "
            "same 2 cores).",
            "",
            harness.table(
                ["measure", "through RBM", "simulator path (same run)", "ratio RBM/simulator", "target"], rows
            ),
        ]
    )


def main() -> None:
    parser = harness.new_parser(__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--campaign-size", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2, help="PostgreSQL: rcsgate worker processes")
    parser.add_argument(
        "--push-concurrency", type=int, default=256, help="events the local RBM pushes at once"
    )
    harness.add_run_options(parser, "smoke run: 2000 messages in campaigns of 1000")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.campaign_size = 2000, 1000
    result = asyncio.run(bench(args))
    harness.finish(args, result, "pipeline_rbm", markdown)


if __name__ == "__main__":
    main()
