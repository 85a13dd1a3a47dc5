"""What recording the Prometheus metrics costs, per call, in both of prometheus-client's value stores:
in memory (`rcsgate serve`, `rcsgate worker`, `api --workers 1`) and in the files of multiprocess
mode (`rcsgate api --workers N`). Each store is measured in a child process of its own (the store
is chosen when prometheus-client is imported). The end-to-end figure is bench/single_send.py's;
this one says where its difference comes from (docs/PERFORMANCE.md, "Metrics overhead").

Usage: python bench/metrics_cost.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import timeit
from typing import Any

N = 20_000


def measure() -> dict[str, float]:
    """Microseconds per operation, in this process's store."""
    from datetime import UTC, datetime, timedelta

    from rcsgate.metrics.instruments import Tally, accept_timer, delivery_seconds, upstream_call

    observe, _ = accept_timer("single")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = now + timedelta(seconds=3)
    row = {"created_at": now, "expires_at": now + timedelta(hours=72), "validity_seconds": 72 * 3600}

    def batch_accept() -> None:
        # What one accept batch (services/sending._write) adds, whatever its size.
        tally = Tally()
        tally.stored("rcs", "api", 20)
        tally.publish()

    def message_moves() -> None:
        # One message's sent → delivered → read, recorded alone (batches share the publish).
        tally = Tally()
        tally.moved("rcs", "simulator", "sent")
        tally.moved("rcs", "simulator", "delivered")
        tally.delivered("rcs", "simulator", delivery_seconds(row, later))
        tally.moved("rcs", "simulator", "read")
        tally.publish()

    def moves_in_batch_of_100() -> None:
        tally = Tally()
        for _ in range(100):
            tally.moved("rcs", "simulator", "sent")
            tally.moved("rcs", "simulator", "delivered")
            tally.delivered("rcs", "simulator", delivery_seconds(row, later))
            tally.moved("rcs", "simulator", "read")
        tally.publish()

    # name: (operation, how many messages or requests one call of it stands for)
    ops: dict[str, tuple[Any, int]] = {
        "accept_observe": (lambda: observe(0.004), 1),
        "accept_batch_tally": (batch_accept, 1),
        "upstream_observe": (lambda: upstream_call("simulator", "submit", "accepted", 0.0002), 1),
        "message_moves_alone": (message_moves, 1),
        "message_moves_in_batch_of_100": (moves_in_batch_of_100, 100),
    }
    out: dict[str, float] = {}
    for name, (fn, per_call) in ops.items():
        fn()  # the label children exist from here on, as in a running process
        number = N // per_call
        best = min(timeit.repeat(fn, number=number, repeat=5))
        out[name] = round(best / number / per_call * 1e6, 3)
    return out


def child(store: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory(prefix="rcsgate-metrics-cost-") as tmp:
        if store == "files":
            env["PROMETHEUS_MULTIPROC_DIR"] = tmp
        done = subprocess.run(
            [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True
        )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return
    results: dict[str, Any] = {"memory": child("memory"), "files": child("files")}
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'µs per operation':34} {'in memory':>10} {'files (multiprocess)':>21}")
    for name in results["memory"]:
        print(f"{name:34} {results['memory'][name]:>10} {results['files'][name]:>21}")


if __name__ == "__main__":
    main()
