"""Scaled mode: separate API and worker processes that coordinate only through PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from conftest import _truncate_pg
from rcsgate.store.signals import SWEEP_LOCK
from test_processes import Proc, cmd, free_port
from test_single_send import request_body

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_env(pg_url: str, tmp_path: Path) -> dict[str, str]:
    asyncio.run(_truncate_pg(pg_url))
    base = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    base.update(
        RCSGATE_DATABASE_URL=pg_url,
        RCSGATE_VAR_DIR=str(tmp_path / "var"),
        RCSGATE_PORT=str(free_port()),
        RCSGATE_JWT_SECRET="s" * 40,
        RCSGATE_SIMULATOR_SENT_LATENCY="0",
        RCSGATE_SIMULATOR_DELIVERED_LATENCY="0",
        RCSGATE_SIMULATOR_READ_LATENCY="0",
        # Idle workers look for work only every 30 s: anything faster is a notification's doing.
        RCSGATE_WORKER_POLL_SECONDS="30",
    )
    return base


def _advisory_locks(url: str, key: int | None = None) -> int:
    async def count() -> int:
        u = make_url(url)
        conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
        try:
            value = await conn.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1"
                " AND ($2::bigint IS NULL OR (l.classid::bigint << 32) + l.objid::bigint = $2)",
                u.database,
                key,
            )
            return int(value)
        finally:
            await conn.close()

    return asyncio.run(count())


def _wait(check: object, what: str, timeout: float = 20.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_idle_workers_wake_on_notify_and_singletons_move_to_a_survivor(
    pg_env: dict[str, str], tmp_path: Path, started: list[Proc]
) -> None:
    url = pg_env["RCSGATE_DATABASE_URL"]
    key = json.loads(cmd(pg_env, "demo", "--json").stdout)["api_key"]
    api = Proc(pg_env, tmp_path / "api.log", "api")
    started.append(api)
    api.wait_ready()
    workers = [Proc(pg_env, tmp_path / f"worker{i}.log", "worker") for i in range(2)]
    started.extend(workers)
    for w in workers:
        w.wait_log("listening")
    # Exactly one leader for each singleton job (sweep, housekeeping), whatever the number of workers.
    _wait(lambda: _advisory_locks(url) == 2, "two advisory locks")
    time.sleep(1.0)  # let both workers settle into their 30 s idle wait

    with httpx.Client(base_url=api.base, timeout=10, headers={"X-API-KEY": key}) as c:
        sent_at = time.monotonic()
        answer = c.post("/api/messages/rcs/send", json=request_body("380501234567", "n1", sms=False))
        assert answer.status_code == 200, answer.text

        def delivered() -> bool:
            found = c.get("/api/messages", params={"filter[reference_id]": "n1"}).json()["data"]
            return bool(found) and found[0]["status"] in ("delivered", "read")

        _wait(delivered, "the message delivered", timeout=10)
        assert time.monotonic() - sent_at < 10, "an idle worker was not woken by NOTIFY"

    sweep_acquired = f'"key": {SWEEP_LOCK}, "event": "singleton_acquired"'
    leader = next(w for w in workers if sweep_acquired in w.log.read_text())
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait()
    survivor = next(w for w in workers if w is not leader)
    _wait(lambda: sweep_acquired in survivor.log.read_text(), "the survivor to take the singletons over")
    # (The housekeeping singleton moves too, at its 30 s pace.)
    _wait(lambda: _advisory_locks(url, SWEEP_LOCK) == 1, "the sweep lock held again")
    survivor.stop()
    api.stop()


def test_rate_limit_is_shared_by_api_processes(
    pg_env: dict[str, str], tmp_path: Path, started: list[Proc]
) -> None:
    key = json.loads(cmd(pg_env, "demo", "--json").stdout)["api_key"]
    apis = []
    for i in range(2):
        env = {**pg_env, "RCSGATE_PORT": str(free_port()), "RCSGATE_RATE_LIMIT": "20/hour"}
        api = Proc(env, tmp_path / f"api{i}.log", "api")
        started.append(api)
        apis.append(api)
    for api in apis:
        api.wait_ready()
    clients = [httpx.Client(base_url=a.base, timeout=10, headers={"X-API-KEY": key}) for a in apis]
    hour = int(time.time() // 3600)
    answers = [clients[i % 2].get("/api/accounts/balance") for i in range(30)]
    if int(time.time() // 3600) != hour:
        pytest.skip("the test straddled the limit's window boundary; run it again")
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(ok) + len(refused) == 30
    # Each process alone would allow 20 (40 in all); shared, at most 20, minus a few stranded in chunks.
    assert 16 <= len(ok) <= 20, len(ok)
    for answer in refused:
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["message"] == "Too Many Attempts."
    for c in clients:
        c.close()
    for api in apis:
        api.stop()


class TcpProxy:
    """A loopback TCP proxy to PostgreSQL that a test can cut and restore: the database 'goes down'
    for our processes (connections reset, new ones refused) without touching the shared server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    def start(self) -> None:
        self._call(self._start())

    def stop(self) -> None:
        self._call(self._stop())


def test_database_outage_answers_503_and_everything_recovers_without_restart(
    pg_env: dict[str, str], tmp_path: Path, started: list[Proc]
) -> None:
    real = make_url(pg_env["RCSGATE_DATABASE_URL"])
    proxy = TcpProxy(real.port or 5432)
    proxy.start()
    env = {
        **pg_env,
        "RCSGATE_DATABASE_URL": real.set(port=proxy.port).render_as_string(hide_password=False),
        "RCSGATE_WORKER_POLL_SECONDS": "0.2",
    }
    key = json.loads(cmd(env, "demo", "--json").stdout)["api_key"]
    api = Proc(env, tmp_path / "api.log", "api")
    worker = Proc(env, tmp_path / "worker.log", "worker")
    started.extend([api, worker])
    api.wait_ready()
    worker.wait_log("listening")
    c = httpx.Client(base_url=api.base, timeout=10, headers={"X-API-KEY": key})

    def status(reference: str) -> str | None:
        found = c.get("/api/messages", params={"filter[reference_id]": reference}).json()["data"]
        return str(found[0]["status"]) if found else None

    assert (
        c.post("/api/messages/rcs/send", json=request_body("380501234567", "before", sms=False)).status_code
        == 200
    )
    _wait(lambda: status("before") in ("delivered", "read"), "the first message delivered")

    proxy.stop()
    down = c.post("/api/messages/rcs/send", json=request_body("380501234568", "during", sms=False))
    assert down.status_code == 503, down.text
    assert down.json()["message"] and down.headers.get("Retry-After")
    assert c.get("/readyz").status_code == 503
    time.sleep(2)  # the worker's loops fail meanwhile; they must come back by themselves

    proxy.start()
    _wait(lambda: c.get("/readyz").status_code == 200, "readiness after the outage")
    assert (
        c.post("/api/messages/rcs/send", json=request_body("380501234569", "after", sms=False)).status_code
        == 200
    )
    _wait(lambda: status("after") in ("delivered", "read"), "a message accepted after the outage delivered")
    assert status("during") is None  # refused with 503, so never stored
    assert status("before") in ("delivered", "read")
    assert api.proc.poll() is None and worker.proc.poll() is None
    c.close()
    worker.stop()
    api.stop()
    proxy.stop()


def _db_rows(url: str, sql: str) -> list[Any]:
    async def fetch() -> list[Any]:
        u = make_url(url)
        conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_sigterm_leaves_no_claims_and_a_restarted_worker_finishes(
    pg_env: dict[str, str], tmp_path: Path, started: list[Proc]
) -> None:
    env = {**pg_env, "RCSGATE_WORKER_POLL_SECONDS": "0.05"}
    url = env["RCSGATE_DATABASE_URL"]
    key = json.loads(cmd(env, "demo", "--json").stdout)["api_key"]
    agent_id = _db_rows(url, "SELECT id FROM rcs_agents WHERE name = 'demo_agent'")[0]["id"]
    cmd(env, "agents", "set-rate", str(agent_id), "400")  # ~5 s for 2000 messages: time to stop mid-way
    api = Proc(env, tmp_path / "api.log", "api")
    started.append(api)
    api.wait_ready()
    worker = Proc(env, tmp_path / "worker.log", "worker")
    started.append(worker)
    worker.wait_log("listening")
    phones = [f"38050{n:07d}" for n in range(2000)]
    with httpx.Client(base_url=api.base, timeout=30, headers={"X-API-KEY": key}) as c:
        created = c.post(
            "/api/campaigns/rcs/send",
            json={
                "phones": [{"number": p} for p in phones],
                "sender": "demo_agent",
                "options": {"text": "Sale!"},
            },
        )
        assert created.status_code == 200, created.text
        campaign_id = created.json()["data"]["id"]

        def counts() -> dict[str, int]:
            rows = _db_rows(
                url,
                f"SELECT status, count(*) AS n FROM messages WHERE campaign_id = {int(campaign_id)} GROUP BY status",
            )
            return {r["status"]: int(r["n"]) for r in rows}

        _wait(lambda: sum(n for s, n in counts().items() if s != "accepted") > 200, "dispatch under way")
        worker.stop()  # SIGTERM: finish the batch in hand, record it, exit
        after_stop = counts()
        assert after_stop.get("sending", 0) == 0, after_stop
        assert after_stop.get("accepted", 0) > 0, f"the campaign finished before the stop: {after_stop}"

        again = Proc(env, tmp_path / "worker2.log", "worker")
        started.append(again)
        _wait(
            lambda: c.get(f"/api/campaigns/{campaign_id}").json()["data"]["status"] == "done",
            "the campaign done after the restart",
            timeout=60,
        )
        final = counts()
        assert sum(final.values()) == 2000 and set(final) <= {"delivered", "read"}, final
        again.stop()
    api.stop()
