"""SMS through SMPP 3.4: N SMS accepted → submitted over one bind (window 10) to the fake SMSC →
delivery receipts applied → `delivered` status webhook acknowledged; against the simulator's SMS
path in the same run.

  - Traffic: campaigns of 5000 RCS messages with an SMS alternative (`alternative_channel.sms`,
    sender DemoSMS, a one-part GSM-7 text) to numbers ending 9990, which the built-in simulator
    answers "not an RCS user" at once: each RCS message ends `undelivered` and its SMS fallback
    follows. The bench scripts have no more direct way to create SMS (the API sends SMS only as
    fallbacks), so every SMS also costs its RCS parent, on both paths alike.
  - Simulator path: the SMS fallbacks go through the built-in zero-latency simulator (no connector).
  - SMPP paths: `rcsgate connectors add-smpp` (window 10) and `rcsgate senders set-connector`
    route DemoSMS to the fake SMSC (`python -m rcsgate.connectors.smpp.fake_smsc`, its own process
    on the same 2 cores), which answers each submit_sm and sends a DELIVRD receipt (deliver_sm);
    rcsgate commits the answer before the part frees its window slot and the receipt before its
    deliver_sm_resp. Run (a) with no SMSC latency, (b) with --latency-ms (20) on every
    submit_sm_resp: then window ÷ latency (500 PDU/s) is the bind's ceiling.
  - End: the receiver has acknowledged the `delivered` webhook of every SMS (as pipeline.py and
    pipeline_rbm.py). msg/s = N / (end - first POST).
  - PDU/s: submit_sm per second (one part per SMS here, so each SMS is also a submit_sm_resp, a
    deliver_sm and a deliver_sm_resp on the bind). End to end: submits ÷ the run's time. On the
    bind: submits ÷ (first → last submit the SMSC counted), and the best 1-s rate, from the fake
    SMSC's stats file (written every 0.2 s).
  - The ratio is SMPP msg/s ÷ simulator msg/s (issue target ≥ 0.8).

Setups as bench/pipeline.py: SQLite `rcsgate serve`; PostgreSQL (--database-url) `rcsgate api` +
--workers `rcsgate worker` processes (one of them holds the SMPP lock and the bind).

Usage: python bench/pipeline_smpp.py [--database-url URL] [--messages 20000] [--quick] [--json] [--update-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import harness
from aiohttp import web
from harness import Proc, Receiver, Stack

TARGET_RATIO = 0.8
TARGET_PDU_S = 1000.0
STALL_SECONDS = 120.0
SMS_SENDER_ID = "1"  # the demo account's DemoSMS (rcsgate senders list)


def sms_number(i: int) -> str:
    """The i-th number ending 9990 (not an RCS user: the SMS fallback follows); 100,000 distinct."""
    return f"380{i % 100_000:05d}9990"


class SmsReceiver(Receiver):
    """harness.Receiver that also notes when the last RCS parent's `undelivered` webhook arrived:
    by then every SMS fallback exists (it is created in the same transaction)."""

    def reset(self, expect: int) -> None:
        super().reset(expect)
        self.parents_done_at = 0.0
        self.started = time.perf_counter()
        self.progress: list[list[float]] = []  # [seconds, RCS parents settled, SMS delivered] each second

    def note(self) -> None:
        t = round(time.perf_counter() - self.started, 1)
        if not self.progress or t >= self.progress[-1][0] + 1.0:
            self.progress.append([t, self.statuses["undelivered"], len(self.delivered)])

    async def handle(self, request: web.Request) -> web.Response:
        response = await super().handle(request)
        self.note()
        if not self.parents_done_at and self.statuses["undelivered"] >= self.expect:
            self.parents_done_at = time.perf_counter()
            self.delivered_at_parents_done = len(self.delivered)
        return response


class SmscStats:
    """Polls the fake SMSC's stats file: when submits started and stopped, the best 1-s rate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples: list[tuple[float, int, int]] = []  # (perf_counter, submits, receipts acked)
        self._task: asyncio.Task[None] | None = None

    def read(self) -> dict[str, int]:
        try:
            return dict(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            return {}

    async def _poll(self) -> None:
        while True:
            stats = self.read()
            if stats:
                self.samples.append(
                    (time.perf_counter(), int(stats["submits"]), int(stats["receipts_acked"]))
                )
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.create_task(self._poll())

    def timeline(self, started: float) -> list[list[float]]:
        """[seconds since start, submits, receipts acked] about every second."""
        out: list[list[float]] = []
        for t, n, acked in self.samples:
            if not out or t - started >= out[-1][0] + 1.0:
                out.append([round(t - started, 1), n, acked])
        return out

    def rate_after(self, moment: float) -> dict[str, Any]:
        """Submits per second from ``moment`` to the last submit."""
        s = [x for x in self.samples if x[0] >= moment]
        if len(s) < 2 or s[-1][1] == s[0][1]:
            return {}
        last_n = s[-1][1]
        last = next(t for t, n, _ in s if n == last_n)
        busy = max(last - s[0][0], 1e-9)
        return {
            "submits": last_n - s[0][1],
            "seconds": round(busy, 2),
            "pdu_per_s": round((last_n - s[0][1]) / busy, 1),
        }

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        final = self.read()
        s = self.samples
        if not s or s[-1][1] == s[0][1]:
            return {"smsc": final}
        base = s[0][1]
        first = next(t for t, n, _ in s if n > base)
        last_n = s[-1][1]
        last = next(t for t, n, _ in s if n == last_n)
        best = 0.0
        j = 0
        for i in range(len(s)):
            while s[i][0] - s[j][0] > 1.0:
                j += 1
            if s[i][0] - s[j][0] >= 0.8:
                best = max(best, (s[i][1] - s[j][1]) / (s[i][0] - s[j][0]))
        busy = max(last - first, 1e-9)
        return {
            "smsc": final,
            "submits": last_n - base,
            "bind_seconds": round(busy, 2),
            "bind_pdu_per_s": round((last_n - base) / busy, 1),
            "best_1s_pdu_per_s": round(best, 1),
        }


def sms_phase(receiver: SmsReceiver) -> dict[str, Any]:
    """From the last RCS parent's `undelivered` webhook (every SMS exists; only SMS are left to
    send) to the last `delivered` one: the SMS path alone, the part the two paths do differently."""
    if not receiver.parents_done_at or receiver.last_delivered_at <= receiver.parents_done_at:
        return {}
    sms = receiver.expect - receiver.delivered_at_parents_done
    seconds = receiver.last_delivered_at - receiver.parents_done_at
    return {
        "starts_at_s": round(receiver.parents_done_at - receiver.started, 2),
        "sms": sms,
        "seconds": round(seconds, 2),
        "msg_per_s": round(sms / seconds, 1),
    }


async def run_rcsgate(
    stack: Stack,
    receiver: SmsReceiver,
    args: argparse.Namespace,
    api_key: str,
    *,
    first_number: int,
    tag: str,
    smsc: SmscStats | None = None,
) -> dict[str, Any]:
    """bench/pipeline.py's run with SMS traffic: RCS with an SMS alternative to numbers ending 9990;
    the end is every SMS's `delivered` webhook acknowledged."""
    procs: list[Proc] = []
    if stack.kind == "sqlite":
        procs.append(stack.start("serve", "serve"))
    else:
        procs.append(stack.start("api", "api"))
        for i in range(args.workers):
            procs.append(stack.start(f"worker{i + 1}", "worker"))
    try:
        await harness.wait_ready(stack.base, procs)
        token = await harness.bearer(stack.base, api_key)
        receiver.reset(args.messages)
        cpu = harness.CpuWindow(pids={p.name: p.pid for p in procs + args.extra_procs})
        headers = {"Authorization": f"Bearer {token}"}
        timeout = aiohttp.ClientTimeout(total=300)
        if smsc is not None:
            smsc.start()
        profiler = None if args.profile_sms_phase else start_profiler(args, procs, tag)
        cpu.start()
        started = receiver.started = time.perf_counter()
        async with aiohttp.ClientSession(base_url=stack.base, headers=headers, timeout=timeout) as session:
            for offset in range(0, args.messages, args.campaign_size):
                size = min(args.campaign_size, args.messages - offset)
                body = json.dumps(
                    {
                        "phones": [{"number": sms_number(first_number + offset + i)} for i in range(size)],
                        "sender": "demo_agent",
                        "options": {"text": f"Benchmark {tag}"},
                        "alternative_channel": {"sms": {"text": f"Benchmark SMS {tag}", "sender": "DemoSMS"}},
                    }
                )
                async with session.post(
                    "/api/campaigns/rcs/send", data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    text = await r.text()
                    if r.status != 200:
                        raise RuntimeError(f"campaign POST answered {r.status}: {text[:500]}")
        accepted_at = time.perf_counter() - started
        while not receiver.done.is_set():
            if args.profile_sms_phase and profiler is None and receiver.parents_done_at:
                profiler = start_profiler(args, procs, tag)
            for p in procs + args.extra_procs:
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
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            await asyncio.to_thread(profiler.wait, 60)
        result: dict[str, Any] = {
            "messages": args.messages,
            "seconds": round(seconds, 3),
            "msg_per_s": round(args.messages / seconds, 1),
            "accept_seconds": round(accepted_at, 3),
            "webhook_statuses": dict(receiver.statuses),
            "duplicate_delivered_webhooks": receiver.duplicate_delivered,
            "process_cores": cpu.cores,
            "machine_busy_cores": cpu.machine_busy_cores,
            "progress": receiver.progress,
            "sms_phase": sms_phase(receiver),
            # CPU the rcsgate processes spent per SMS (its RCS parent included): steadier than msg/s
            # on a machine shared with other work.
            "rcsgate_cpu_ms_per_sms": round(
                sum(cpu.cores[p.name] for p in procs) * cpu.wall / args.messages * 1000, 3
            ),
        }
        if smsc is not None:
            await asyncio.sleep(0.3)  # the stats file's last write
            bind = await smsc.stop()
            if receiver.parents_done_at:
                bind["sms_phase"] = smsc.rate_after(receiver.parents_done_at)
            bind["timeline"] = smsc.timeline(started)
            result["bind"] = bind
            result["pdu_per_s"] = round(bind.get("submits", 0) / seconds, 1)
        return result
    finally:
        await stack.stop_all()


def start_profiler(args: argparse.Namespace, procs: list[Proc], tag: str) -> subprocess.Popen[bytes] | None:
    """py-spy (raw collapsed stacks, 200 Hz) on `serve`, or on the first worker (PostgreSQL), for the
    run; summarise with bench/top_frames.py."""
    if not args.profile:
        return None
    target = procs[0] if len(procs) == 1 else procs[1]
    output = f"{args.profile}-{tag}.txt"
    print(f"profiling {target.name} into {output}", file=sys.stderr)
    return subprocess.Popen(
        [
            *(args.py_spy, "record", "--pid", str(target.pid), "--rate", "200", "--format", "raw"),
            *("--output", output, "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def start_smsc(
    stack: Stack, name: str, latency_ms: float, receipt_delay_ms: float
) -> tuple[Proc, SmscStats, int]:
    port = harness.free_port()
    stats = stack.tmp / f"{name}-stats.json"
    proc = Proc.spawn(
        name,
        [
            sys.executable,
            "-m",
            "rcsgate.connectors.smpp.fake_smsc",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--receipt-delay-ms",
            str(receipt_delay_ms),
            "--stats-file",
            str(stats),
        ],
        env=stack.env,
        log_dir=stack.tmp,
    )
    deadline = time.monotonic() + 30
    while not stats.exists():
        proc.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fake SMSC did not start (log {proc.log_path})")
        await asyncio.sleep(0.05)
    return proc, SmscStats(stats), port


async def run_smpp(
    stack: Stack,
    receiver: SmsReceiver,
    args: argparse.Namespace,
    api_key: str,
    *,
    name: str,
    latency_ms: float,
    first_number: int,
    src: str | None = None,
) -> dict[str, Any]:
    smsc, stats, port = await start_smsc(stack, name, latency_ms, args.receipt_delay_ms)
    args.extra_procs = [smsc]
    if src is not None:
        stack.env["PYTHONPATH"] = src  # ahead of the editable install's path
    try:
        stack.cli(
            "connectors",
            "add-smpp",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--system-id",
            "bench",
            "--password",
            "secret",
            "--window",
            str(args.window),
        )
        stack.cli("senders", "set-connector", SMS_SENDER_ID, name)
        result = await run_rcsgate(
            stack, receiver, args, api_key, first_number=first_number, tag=name, smsc=stats
        )
        result["smsc_process_cores"] = result["process_cores"].pop(name, None)
        result["latency_ms"] = latency_ms
        if src is not None:
            result["src"] = src
        bind = result["bind"]
        print(
            f"SMPP {name} (latency {latency_ms:g} ms): {result['msg_per_s']} msg/s ({result['seconds']} s); "
            f"bind {bind.get('bind_pdu_per_s')} submit_sm/s, best 1 s {bind.get('best_1s_pdu_per_s')}; "
            f"cores {result['process_cores']}, SMSC {result['smsc_process_cores']}, "
            f"rcsgate CPU {result['rcsgate_cpu_ms_per_sms']} ms/SMS, "
            f"machine {result['machine_busy_cores']}",
            file=sys.stderr,
        )
        return result
    finally:
        args.extra_procs = []
        stack.env.pop("PYTHONPATH", None)
        await smsc.stop()
        # The next run binds elsewhere: this connector must not keep reconnecting meanwhile.
        stack.cli("senders", "set-connector", SMS_SENDER_ID, "simulator")
        stack.cli("connectors", "remove", name)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(args.database_url)
    demo = await stack.create()
    receiver = SmsReceiver()
    hook = await receiver.start()
    stack.cli("accounts", "set-callback-url", str(demo.account_id), hook)
    args.extra_procs = []
    wanted = args.only or ["simulator", "smpp", "latency"]
    plan: list[tuple[str, float | None, str | None]] = []  # (key, SMSC latency or None: simulator, src)
    if "simulator" in wanted:
        plan.append(("simulator", None, None))
    for key, latency in (("smpp", 0.0), ("latency", args.latency_ms)):
        if key in wanted:
            if args.before_src:
                plan.append((f"{key}_before", latency, args.before_src))
            plan.append((key, latency, None))
    results: dict[str, dict[str, Any]] = {}
    try:
        for i, (key, latency, src) in enumerate(plan):
            if latency is None:
                results[key] = await run_rcsgate(
                    stack, receiver, args, demo.api_key, first_number=0, tag="sim"
                )
                sim = results[key]
                print(
                    f"simulator SMS path: {sim['msg_per_s']} msg/s ({sim['seconds']} s); "
                    f"cores {sim['process_cores']}, rcsgate CPU {sim['rcsgate_cpu_ms_per_sms']} ms/SMS, "
                    f"machine {sim['machine_busy_cores']}",
                    file=sys.stderr,
                )
                continue
            results[key] = await run_smpp(
                stack,
                receiver,
                args,
                demo.api_key,
                name=f"smsc{latency:g}" + ("b" if src else ""),
                latency_ms=latency,
                first_number=i * args.messages,
                src=src,
            )
    finally:
        await receiver.stop()
    empty: dict[str, Any] = {"msg_per_s": float("nan"), "bind": {}}
    simulator = results.get("simulator", empty)
    fast = results.get("smpp", empty)
    slow = results.get("latency", empty)
    ceiling = args.window / (args.latency_ms / 1000) if args.latency_ms > 0 else float("nan")
    ratio_fast = harness.ratio(fast["msg_per_s"], simulator["msg_per_s"])
    ratio_slow = harness.ratio(slow["msg_per_s"], simulator["msg_per_s"])
    return {
        **harness.result_head("pipeline_smpp", stack.kind, args.quick),
        "setup": {
            "rcsgate": "rcsgate serve"
            if stack.kind == "sqlite"
            else f"rcsgate api + {args.workers} rcsgate worker processes",
            "smsc": "python -m rcsgate.connectors.smpp.fake_smsc --latency-ms L --stats-file F",
            "window": args.window,
            "latency_ms": args.latency_ms,
            "messages": args.messages,
            "campaign_size": args.campaign_size,
        },
        "simulator": simulator,
        "smpp": fast,
        "smpp_latency": slow,
        **(
            {"before": {k: v for k, v in results.items() if k.endswith("_before")}} if args.before_src else {}
        ),
        "ratios": {
            "smpp_over_simulator": round(ratio_fast, 3),
            "smpp_latency_over_simulator": round(ratio_slow, 3),
            "sms_phase_smpp_over_simulator": round(
                harness.ratio(_phase(fast, "msg_per_s"), _phase(simulator, "msg_per_s")), 3
            ),
            "sms_phase_smpp_latency_over_simulator": round(
                harness.ratio(_phase(slow, "msg_per_s"), _phase(simulator, "msg_per_s")), 3
            ),
            "latency_bind_over_ceiling": round(harness.ratio(_bind_rate(slow), ceiling), 3),
        },
        "latency_ceiling_pdu_per_s": ceiling,
        "targets": {
            "ratio": TARGET_RATIO,
            "bind_pdu_per_s": TARGET_PDU_S,
            "met": ratio_fast >= TARGET_RATIO and _bind_rate(fast) >= TARGET_PDU_S,
        },
        "logs": str(stack.tmp),
    }


def _phase(run: dict[str, Any], key: str) -> float:
    return float(run.get("sms_phase", {}).get(key, float("nan")))


def _bind_rate(run: dict[str, Any]) -> float:
    """submit_sm/s on the bind while only SMS were left to send (the bind had a backlog)."""
    return float(run.get("bind", {}).get("sms_phase", {}).get("pdu_per_s", float("nan")))


def markdown(result: dict[str, Any]) -> str:
    sim, fast, slow, setup = result["simulator"], result["smpp"], result["smpp_latency"], result["setup"]
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[result["database"]]
    r_fast = result["ratios"]["smpp_over_simulator"]
    r_slow = result["ratios"]["smpp_latency_over_simulator"]
    ceiling = result["latency_ceiling_pdu_per_s"]
    latency = f"{setup['latency_ms']:g} ms"
    fb, sb = fast["bind"], slow["bind"]

    def cores(run: dict[str, Any]) -> str:
        text = ", ".join(f"{k} {v}" for k, v in run["process_cores"].items())
        if run.get("smsc_process_cores") is not None:
            text += f"; fake SMSC {run['smsc_process_cores']}"
        return text

    r_phase = result["ratios"]["sms_phase_smpp_over_simulator"]
    r_phase_slow = result["ratios"]["sms_phase_smpp_latency_over_simulator"]
    nan = float("nan")

    def phase(run: dict[str, Any]) -> str:
        p = run.get("sms_phase", {})
        return (
            f"{harness.fmt(p.get('msg_per_s', nan))} msg/s ({p.get('sms', 0):,} SMS in {p.get('seconds')} s)"
        )

    def bind(b: dict[str, Any]) -> str:
        p = b.get("sms_phase", {})
        return f"**{harness.fmt(p.get('pdu_per_s', nan))}** ({p.get('submits', 0):,} in {p.get('seconds')} s)"

    def smsc(b: dict[str, Any]) -> str:
        c = b["smsc"]
        return (
            f"{c.get('submits'):,} / {c.get('duplicates')} / {c.get('receipts_sent'):,} / "
            f"{c.get('receipts_acked'):,}"
        )

    bind_fast = _bind_rate(fast)
    rows = [
        [
            f"{setup['messages']:,} SMS: first campaign POST → last `delivered` webhook acked",
            f"**{harness.fmt(fast['msg_per_s'])} msg/s** ({fast['seconds']} s)",
            f"**{harness.fmt(slow['msg_per_s'])} msg/s** ({slow['seconds']} s)",
            f"{harness.fmt(sim['msg_per_s'])} msg/s ({sim['seconds']} s)",
            f"SMPP ≥ {TARGET_RATIO} of the simulator path: **{r_fast:.2f}** "
            f"{harness.check(r_fast >= TARGET_RATIO)} (with {latency}: {r_slow:.2f})",
        ],
        [
            "SMS phase: last RCS parent settled → last `delivered` webhook acked",
            phase(fast),
            phase(slow),
            phase(sim),
            f"ratio {r_phase:.2f} (with {latency}: {r_phase_slow:.2f})",
        ],
        [
            "submit_sm/s on the bind in the SMS phase (a backlog waiting)",
            bind(fb),
            bind(sb),
            harness.NA,
            f"≥ {TARGET_PDU_S:,.0f} {harness.check(bind_fast >= TARGET_PDU_S)}; with {latency}: "
            f"{result['ratios']['latency_bind_over_ceiling']:.2f} of the {harness.fmt(ceiling, 0)} ceiling",
        ],
        [
            "submit_sm/s: first → last submit; best 1 s",
            f"{harness.fmt(fb.get('bind_pdu_per_s', nan))}; {harness.fmt(fb.get('best_1s_pdu_per_s', nan))}",
            f"{harness.fmt(sb.get('bind_pdu_per_s', nan))}; {harness.fmt(sb.get('best_1s_pdu_per_s', nan))}",
            harness.NA,
            harness.NA,
        ],
        [
            "fake SMSC: submits / duplicates / receipts sent / acked",
            smsc(fb),
            smsc(sb),
            harness.NA,
            "duplicates 0",
        ],
        [
            "rcsgate CPU per SMS (RCS parent included)",
            f"{fast['rcsgate_cpu_ms_per_sms']} ms",
            f"{slow['rcsgate_cpu_ms_per_sms']} ms",
            f"{sim['rcsgate_cpu_ms_per_sms']} ms",
            harness.NA,
        ],
        [
            f"machine busy (cores of {result['machine']['nproc']}); process cores",
            f"{fast['machine_busy_cores']}; {cores(fast)}",
            f"{slow['machine_busy_cores']}; {cores(slow)}",
            f"{sim['machine_busy_cores']}; {cores(sim)}",
            harness.NA,
        ],
        [
            "duplicate `delivered` webhooks",
            str(fast["duplicate_delivered_webhooks"]),
            str(slow["duplicate_delivered_webhooks"]),
            str(sim["duplicate_delivered_webhooks"]),
            "0",
        ],
    ]
    return "\n".join(
        [
            harness.measured_on(label, result),
            f"Command: `{result['command']}`. rcsgate: {setup['rcsgate']}; campaigns of "
            f"{setup['campaign_size']:,} RCS messages with an SMS alternative to numbers ending 9990 "
            f"(not RCS users: each SMS follows its RCS message's `undelivered`). SMPP: window "
            f"{setup['window']}, one bind to the fake SMSC (its own process, on the same 2 cores).",
            "",
            harness.table(
                [
                    "measure",
                    "SMPP, no SMSC latency",
                    f"SMPP, {latency} SMSC latency",
                    "simulator SMS path (same run)",
                    "target",
                ],
                rows,
            ),
        ]
    )


def main() -> None:
    parser = harness.new_parser(__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--campaign-size", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2, help="PostgreSQL: rcsgate worker processes")
    parser.add_argument("--window", type=int, default=10, help="the SMPP connector's window")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="the fake SMSC's latency in the second SMPP run"
    )
    parser.add_argument(
        "--profile", default=None, help="py-spy each run into PREFIX-<run>.txt (raw collapsed stacks)"
    )
    parser.add_argument(
        "--profile-sms-phase",
        action="store_true",
        help="with --profile: start once every RCS parent is settled (only SMS left to send)",
    )
    parser.add_argument("--py-spy", default=str(Path(sys.executable).parent / "py-spy"), help="py-spy binary")
    parser.add_argument(
        "--receipt-delay-ms",
        type=float,
        default=0.0,
        help="the fake SMSC sends each receipt this long after its submit's answer (default: at once)",
    )
    parser.add_argument(
        "--before-src",
        default=None,
        help="also run each SMPP path with the rcsgate package from this src directory (e.g. of a git "
        "worktree at an earlier commit), just before the current code's: before/after in one run",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=("simulator", "smpp", "latency"),
        help="run only these paths (repeatable; for tuning: no --update-doc)",
    )
    harness.add_run_options(parser, "smoke run: 2000 messages in campaigns of 1000")
    args = parser.parse_args()
    if args.only and args.update_doc:
        parser.error("--update-doc needs every path: leave out --only")
    if args.quick:
        args.messages, args.campaign_size = 2000, 1000
    result = asyncio.run(bench(args))
    harness.finish(args, result, "pipeline_smpp", markdown)


if __name__ == "__main__":
    main()
