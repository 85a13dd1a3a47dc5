"""Shared pieces of the benchmark scripts in bench/: starting rcsgate processes on a fresh database,
a webhook receiver, CPU and memory readings from /proc, percentiles, and rewriting the result
blocks of docs/PERFORMANCE.md.

Not a benchmark itself; imported by single_send.py, pipeline.py and queries.py (which run with
bench/ as their first sys.path entry).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from aiohttp import web

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
RCSGATE = str(Path(sys.executable).parent / "rcsgate")
JWT_SECRET = "bench-" + "x" * 40
# Far above anything a benchmark sends, so the per-account budget never throttles it.
RATE_LIMIT = "1000000/second"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NA = "\u2013"  # an en dash: "not applicable" in result tables


# ---------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def db_kind(url: str) -> str:
    return "sqlite" if is_sqlite(url) else "postgresql"


def pg_dsn(url: str) -> str:
    """A URL asyncpg accepts (no SQLAlchemy driver suffix)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url).replace(
        "postgres+asyncpg://", "postgresql://"
    )


def sqlite_file(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.nan


def ua_number(i: int) -> str:
    """The i-th distinct Ukrainian test number. Skips the simulator's special suffixes (…999x), so
    every message takes the plain sent → delivered → read path."""
    n = i + (i // 9990) * 10
    return f"3806{n:08d}"


def command_line() -> str:
    """How this script was run, as a command to paste (interpreter shown relative to the repo)."""
    exe = sys.executable
    with contextlib.suppress(ValueError):
        exe = str(Path(exe).relative_to(ROOT))
    script = sys.argv[0]
    with contextlib.suppress(ValueError):
        script = str(Path(script).resolve().relative_to(ROOT))
    # Keep user and host of a database URL, hide a password.
    args = [re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:…@", a) for a in sys.argv[1:]]
    return shlex.join([exe, script, *args])


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    mem_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0))
    return {
        "cpu": model,
        "nproc": nproc,
        "arch": platform.machine(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg()[0],
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m['cpu']}, {m['nproc']} cores (nproc), {m['memory_gib']} GiB, {m['arch']}, "
        f"Python {m['python']}, Linux {m['kernel']}; load average {m['load_average_at_start']:.2f} at start"
    )


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def emit(result: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(result, indent=None if as_json else 2, default=str))


def tidy(result: dict[str, Any], keep: bool) -> None:
    """Remove the run's temporary directory (database, logs) after a successful run, unless kept.
    A failed run leaves it, and its path is in the error."""
    if keep:
        print(f"kept {result['logs']}", file=sys.stderr)
        return
    shutil.rmtree(result["logs"], ignore_errors=True)
    result["logs"] = None


# ---------------------------------------------------------------- /proc readings


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its closing ')' is plain.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """pid and every process below it (uvicorn --workers children, multiprocessing helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the command name: state(0) ppid(1) ... utime(11) stime(12).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int | None:
    """A `kB` line of /proc/<pid>/status, e.g. VmHWM (peak RSS) or VmRSS."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which is already in user
    return float(total - idle), float(total)


@dataclass
class CpuWindow:
    """CPU used by some process trees and by the whole machine between start() and stop()."""

    pids: dict[str, int]
    wall: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)
    machine_busy_cores: float = 0.0
    _t0: float = 0.0
    _proc0: dict[str, dict[int, float]] = field(default_factory=dict)
    _machine0: tuple[float, float] = (0.0, 0.0)

    def _sample(self) -> dict[str, dict[int, float]]:
        return {name: {p: cpu_seconds(p) for p in descendants(pid)} for name, pid in self.pids.items()}

    def start(self) -> None:
        self._proc0 = self._sample()
        self._machine0 = machine_cpu()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._t0
        busy1, total1 = machine_cpu()
        end = self._sample()
        for name, samples in end.items():
            before = self._proc0.get(name, {})
            used = sum(v - before.get(p, 0.0) for p, v in samples.items())
            self.cores[name] = round(used / self.wall, 2) if self.wall else 0.0
        busy0, total0 = self._machine0
        share = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
        self.machine_busy_cores = round(share * (os.cpu_count() or 1), 2)

    def as_dict(self) -> dict[str, Any]:
        return {"process_cores": self.cores, "machine_busy_cores": self.machine_busy_cores}


class SelfCpu:
    """This process's own CPU share (os.times: user + system) over a window, in cores."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        t = os.times()
        self._c0 = t.user + t.system

    def cores(self) -> float:
        t = os.times()
        wall = time.perf_counter() - self._t0
        return (t.user + t.system - self._c0) / wall if wall else 0.0


# ---------------------------------------------------------------- databases and rcsgate processes


async def reset_postgres(url: str) -> None:
    """The benchmark owns this database: start from an empty public schema (creating the database
    first if the server has none of that name)."""
    try:
        conn = await asyncpg.connect(pg_dsn(url))
    except asyncpg.InvalidCatalogNameError:
        base, _, name = pg_dsn(url).partition("?")[0].rpartition("/")
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(pg_dsn(url))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


async def vacuum_postgres(url: str) -> None:
    """VACUUM the benchmark's database: dead row versions and index entries left by an earlier run
    in the same database are gone, as autovacuum would have removed them (this machine kind's
    PostgreSQL runs without autovacuum, the CI configuration)."""
    conn = await asyncpg.connect(pg_dsn(url))
    try:
        await conn.execute("VACUUM")
    finally:
        await conn.close()


@dataclass
class Demo:
    account_id: int
    api_key: str
    agent: str


class Stack:
    """A fresh rcsgate installation (database, demo account) and the processes started on it.

    SQLite: a file in a temporary directory. PostgreSQL: the given database, emptied first.
    """

    def __init__(self, database_url: str | None, *, extra_env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="rcsgate-bench-"))
        self.url = database_url or f"sqlite:///{self.tmp / 'bench.db'}"
        self.kind = db_kind(self.url)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
        self.env.update(
            RCSGATE_DATABASE_URL=self.url,
            RCSGATE_VAR_DIR=str(self.tmp),
            RCSGATE_PORT=str(self.port),
            RCSGATE_JWT_SECRET=JWT_SECRET,
            RCSGATE_SIMULATOR_ZERO_LATENCY="true",
            RCSGATE_WEBHOOKS_ALLOW_PRIVATE="true",
            RCSGATE_RATE_LIMIT=RATE_LIMIT,
            RCSGATE_LOG_LEVEL="WARNING",
        )
        self.env.update(extra_env or {})
        self.procs: list[Proc] = []

    def cli(self, *args: str) -> str:
        done = subprocess.run([RCSGATE, *args], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"rcsgate {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    async def create(self, *, topup: str = "100000000") -> Demo:
        """Empty database at the code's schema revision, plus the demo account with a large balance."""
        if self.kind == "postgresql":
            await reset_postgres(self.url)
        self.cli("db", "upgrade")
        data = json.loads(self.cli("demo", "--json"))
        self.cli("accounts", "topup", str(data["account_id"]), topup, "--note", "benchmark")
        return Demo(
            account_id=int(data["account_id"]), api_key=str(data["api_key"]), agent=str(data["agent"])
        )

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc.spawn(name, [RCSGATE, *args], env=env or self.env, log_dir=self.tmp)
        self.procs.append(proc)
        return proc

    async def stop_all(self) -> None:
        for proc in reversed(self.procs):
            await proc.stop()
        self.procs.clear()


@dataclass
class Proc:
    """A child process whose output goes to a log file in the run's temporary directory."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: TextIO

    @classmethod
    def spawn(cls, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path) -> Proc:
        log_path = log_dir / f"{name}.log"
        log = log_path.open("w")
        popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        return cls(name=name, popen=popen, log_path=log_path, _log=log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode} (log {self.log_path}); last output:\n{self.tail()}"
            )

    def memory_mb(self) -> dict[str, float | None]:
        """Resident memory in MB: `peak_rss_mb` is the largest VmHWM (peak) among the process and its
        descendants (uvicorn --workers children), `rss_mb_sum` their current VmRSS added up."""
        pids = descendants(self.pid)
        hwm = [status_kb(p, "VmHWM") or 0 for p in pids]
        rss = [status_kb(p, "VmRSS") or 0 for p in pids]
        return {
            "peak_rss_mb": round(max(hwm) / 1024, 1) if hwm else None,
            "rss_mb_sum": round(sum(rss) / 1024, 1) if rss else None,
            "processes": len(pids),
        }

    async def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.popen.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


async def wait_ready(base: str, procs: Iterable[Proc], *, path: str = "/readyz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            for proc in procs:
                proc.check_alive()
            try:
                async with session.get(base + path) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base}{path} not ready after {timeout} s")
            await asyncio.sleep(0.1)


async def bearer(base: str, api_key: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + "/api/auth/login", json={"api_key": api_key}) as r,
    ):
        r.raise_for_status()
        return str((await r.json())["bearer"])


# ---------------------------------------------------------------- webhook receiver


class Receiver:
    """A local webhook endpoint (aiohttp) that acknowledges every POST with 200 and counts the
    distinct message ids whose `delivered` status webhook arrived (only ids above `floor`: a run's
    own messages, when earlier ones may still be sent)."""

    def __init__(self) -> None:
        self.floor = 0
        self.delivered: set[int] = set()
        self.statuses: Counter[str] = Counter()
        self.duplicate_delivered = 0
        self.posts = 0
        self.expect = 0
        self.done = asyncio.Event()
        self.last_delivered_at = 0.0
        self._runner: web.AppRunner | None = None
        self.url = ""

    def reset(self, expect: int) -> None:
        self.delivered = set()
        self.statuses = Counter()
        self.duplicate_delivered = 0
        self.posts = 0
        self.last_delivered_at = 0.0
        self.expect = expect
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.posts += 1
        status = str(body.get("status"))
        self.statuses[status] += 1
        message_id = int(body["id"]) if status == "delivered" else 0
        if message_id > self.floor:
            if message_id in self.delivered:
                self.duplicate_delivered += 1
            self.delivered.add(message_id)
            self.last_delivered_at = time.perf_counter()
            if self.expect and len(self.delivered) >= self.expect:
                self.done.set()
        return web.Response(status=200)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# ---------------------------------------------------------------- docs/PERFORMANCE.md


def _markers(block: str) -> tuple[str, str]:
    return f"<!-- bench:{block} -->", f"<!-- /bench:{block} -->"


def update_doc(block: str, markdown: str, path: Path = PERFORMANCE_MD) -> None:
    """Replace the text between `<!-- bench:BLOCK -->` and `<!-- /bench:BLOCK -->` in PERFORMANCE.md."""
    start, end = _markers(block)
    text = path.read_text()
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"{path}: markers {start} … {end} not found; add them where the table belongs")
    path.write_text(text[: i + len(start)] + "\n" + markdown.strip() + "\n" + text[j:])
    print(f"updated {path} ({block})", file=sys.stderr)


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def check(ok: bool) -> str:
    return "✓" if ok else "✗"


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def new_parser(doc: str | None) -> argparse.ArgumentParser:
    """A script's argument parser with the option every benchmark has: the database."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (emptied!); default: SQLite")
    return parser


def result_head(benchmark: str, database: str, quick: bool) -> dict[str, Any]:
    """The keys every benchmark's result starts with: what, on which database, when, where, how run."""
    return {
        "benchmark": benchmark,
        "database": database,
        "date": today(),
        "machine": machine(),
        "command": command_line(),
        "quick": quick,
    }


def measured_on(label: str, result: dict[str, Any]) -> str:
    """The first line of a result block: what, when and on which machine."""
    return f"**{label}**, measured {result['date']} on {machine_line(result['machine'])}."


VS_BASELINE = ["measure", "rcsgate", "baseline", "ratio rcsgate/baseline", "target"]


def add_run_options(parser: argparse.ArgumentParser, quick_help: str) -> None:
    """The options every scale benchmark shares."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", action="store_true", help="one-line JSON output")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (database, logs)")
    parser.add_argument(
        "--update-doc",
        action="store_true",
        help="write the table into docs/PERFORMANCE.md (not with --quick)",
    )


def finish(
    args: argparse.Namespace,
    result: dict[str, Any],
    name: str,
    markdown: Callable[[dict[str, Any]], str],
) -> None:
    """Print the result and, unless it was a smoke run, write its table into docs/PERFORMANCE.md."""
    tidy(result, args.keep)
    emit(result, args.json)
    if args.update_doc:
        if args.quick:
            print("--quick: figures not written to docs/PERFORMANCE.md", file=sys.stderr)
        else:
            update_doc(f"{name}:{result['database']}", markdown(result))
