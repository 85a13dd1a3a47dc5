"""The database's disk fills up under a running embedded server, then space comes back.

For real: the SQLite database lives on a small tmpfs (mounting one needs root; the test is skipped
where that is impossible), and a file filling the rest of it takes the space away. While it is
full, writes answer 503 with Retry-After, /readyz says not ready, the workers pause quietly and the
simulator keeps the reports it cannot hand over; once the file is removed, everything resumes and
every message accepted before reaches its end state with its webhooks.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from conftest import Receiver, eventually
from rcsgate.domain.errors import StorageFull
from rcsgate.store.db import is_storage_full
from test_crash_recovery import _rows
from test_processes import Proc, cmd, free_port


def test_storage_full_is_recognised_on_both_engines() -> None:
    import sqlite3

    import asyncpg

    sqlite_full = sqlite3.OperationalError("database or disk is full")
    sqlite_full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert is_storage_full(OperationalError("INSERT", {}, sqlite_full))
    # SQLAlchemy's asyncpg adaptation keeps the SQLSTATE; asyncpg's own error carries it too.
    pg_full = asyncpg.exceptions.DiskFullError("could not extend file")
    assert is_storage_full(OperationalError("INSERT", {}, pg_full))
    assert not is_storage_full(RuntimeError("write transaction failed"))
    chained = RuntimeError("write transaction failed")
    chained.__cause__ = OperationalError("COMMIT", {}, sqlite_full)
    assert is_storage_full(chained) and is_storage_full(StorageFull())
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5  # type: ignore[attr-defined]
    assert not is_storage_full(OperationalError("INSERT", {}, locked))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of its own (room for the write-ahead log: up to 4 MiB)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; returns it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return filler


def _send(api: httpx.Client, n: int) -> httpx.Response:
    return api.post(
        "/api/messages/rcs/send",
        json={"phone": {"number": f"38066{n:03d}1231"}, "sender": "demo_agent", "options": {"text": "hi"}},
    )


@pytest.mark.slow
def test_a_full_disk_answers_503_pauses_quietly_and_loses_nothing(
    small_disk: Path, tmp_path: Path, receiver: Receiver, started: list[Proc]
) -> None:
    url = f"sqlite:///{small_disk / 'rcsgate.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env.update(
        RCSGATE_DATABASE_URL=url,
        RCSGATE_VAR_DIR=str(tmp_path / "var"),
        RCSGATE_PORT=str(free_port()),
        RCSGATE_WEBHOOKS_ALLOW_PRIVATE="true",
        RCSGATE_SIMULATOR_READ_LATENCY="2",
    )
    cmd(env, "db", "upgrade")
    demo = json.loads(cmd(env, "demo", "--json").stdout)
    cmd(env, "accounts", "set-callback-url", str(demo["account_id"]), receiver.url)
    log = tmp_path / "serve.log"
    server = Proc(env, log, "serve")
    started.append(server)
    server.wait_ready()
    with httpx.Client(base_url=server.base, headers={"X-API-KEY": demo["api_key"]}, timeout=30) as api:
        accepted = []
        for n in range(20):
            r = _send(api, n)
            assert r.status_code == 200, r.text
            accepted.append(r.json()["data"]["id"])

        # Submitted and delivered: the simulator owes their "read" reports, due during the full spell.
        eventually(
            lambda: {m["status"] for m in _rows(url, "SELECT status FROM messages")} == {"delivered"},
            what="the first messages delivered",
            timeout=10,
            interval=0.1,
        )
        filler = fill(small_disk)
        # The write-ahead log may still have room for a few commits; then writes fail.
        refused = None
        for n in range(20, 2000):
            r = _send(api, n)
            if r.status_code == 200:
                accepted.append(r.json()["data"]["id"])
                continue
            refused = r
            break
        assert refused is not None, "every send was accepted on a full disk"
        assert refused.status_code == 503, refused.text
        assert refused.json() == {"message": "Service temporarily unavailable.", "errors": {}}
        assert int(refused.headers["retry-after"]) > 0
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["errors"] == {}
        assert "retry-after" in ready.headers
        # Reads still work.
        assert api.get("/api/accounts/balance").status_code == 200

        # Long enough for the "read" reports to come due, and for the workers to have tried and
        # paused a few times.
        time.sleep(4)
        # Reads due two seconds ago that could not be recorded: the simulator must still hold them.
        assert "delivered" in {m["status"] for m in _rows(url, "SELECT status FROM messages")}
        assert api.get("/readyz").status_code == 503
        records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        events = [r["event"] for r in records]
        assert "worker_loop_crashed" not in events and "webhook_round_failed" not in events
        assert events.count("database_storage_full") == 1
        paused = [r["loop"] for r in records if r["event"] == "worker_loop_paused"]
        assert len(paused) == len(set(paused)), f"a loop said it paused more than once: {paused}"
        assert not any("Traceback" in line or "exception" in line for line in log.read_text().splitlines())

        filler.unlink()
        # Ready once no write has failed for a while (store/db.FULL_HOLD_SECONDS) and one succeeds.
        eventually(
            lambda: api.get("/readyz").status_code == 200, what="ready again", timeout=25, interval=0.5
        )
        r = _send(api, 2000)
        assert r.status_code == 200, r.text
        accepted.append(r.json()["data"]["id"])

        def statuses() -> dict[int, str]:
            rows = _rows(url, "SELECT id, status FROM messages")
            return {int(m["id"]): str(m["status"]) for m in rows}

        eventually(
            lambda: set(statuses().values()) == {"read"},
            what="every accepted message read",
            timeout=30,
            interval=0.5,
        )
        assert sorted(statuses()) == sorted(accepted)
        eventually(
            lambda: (
                _rows(url, "SELECT count(*) AS n FROM webhook_deliveries WHERE status <> 'delivered'")[0]["n"]
                == 0
            ),
            what="every webhook delivered",
            timeout=30,
            interval=0.5,
        )
        got = {(b["id"], b["status"]) for b in receiver.bodies() if "status" in b}
        assert got == {(mid, s) for mid in accepted for s in ("sent", "delivered", "read")}
        events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")]
        assert "simulator_report_dropped" not in events and "database_writes_resumed" in events
    server.stop()
