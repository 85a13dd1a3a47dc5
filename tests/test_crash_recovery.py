"""Crash tests with real processes: workers (PostgreSQL) or the whole embedded server (SQLite) are
killed with SIGKILL while a 5000-recipient campaign is dispatched, and restarted. The upstream is a
real `rcsgate simulator` process that outlives them, journals every submit (who sent it, whether the
answer reached the client) and pushes its reports to the API's ingress until they are taken.

At the end, every promise is checked from what a user can observe (the database, the simulator's
journal, the webhook receiver):

- every message (RCS and SMS fallback) ends in the state the simulator's outcome table gives;
- no message was submitted again after an answered submit, unless that submit's process was killed
  (its answer was lost with it) or the answer said "try later";
- every delivered message is charged once, the balance is top-ups minus charges, nothing stays
  reserved;
- every status callback was received (de-duplicated by `webhook-id`), none missing;
- the killed process's claims (messages and webhooks) were back in work within 15 s of each kill
  (recovery_watch.py), at the default claim lease and an 8 s liveness threshold: its liveness beat stops, the
  sweep leader takes it for dead (PostgreSQL), or the restarted server takes every earlier holder
  for dead at once (SQLite: one process per database). Printed: run with -s to see the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from conftest import Receiver, _truncate_pg, eventually
from rcsgate.config import normalize_database_url
from rcsgate.store.db import Database
from recovery_watch import RecoveryWatch, pid_of
from test_processes import Proc, cmd, free_port
from test_simulator_service import EXPECTED

pytestmark = pytest.mark.slow

SECRET = "crash-test-shared-secret-0123456789"
INGRESS = "/api/upstream/simulator/events"
RECIPIENTS = 5000
PREFIXES = ("38050", "38066", "38067", "38068", "38095")
# Last four digits → (RCS end state, SMS fallback end state or None): the simulator's table, plus
# 9997 (three "try later" answers, then read).
OUTCOMES: dict[str, tuple[str, str | None]] = {**EXPECTED, "9997": ("read", None)}
HOST = socket.gethostname()


def _phones() -> dict[str, str]:
    """RECIPIENTS distinct Ukrainian mobile numbers, the suffixes taking turns: number → suffix."""
    suffixes = list(OUTCOMES)
    phones: dict[str, str] = {}
    for n in range(RECIPIENTS):
        suffix = suffixes[n % len(suffixes)]
        phones[f"{PREFIXES[n // 1000]}{n % 1000:03d}{suffix}"] = suffix
    return phones


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        db = Database.from_url(normalize_database_url(url))
        try:
            async with db.read() as conn:
                return [dict(r._mapping) for r in await conn.execute(text(sql))]
        finally:
            await db.close()

    return asyncio.run(fetch())


def _claimed_by_living(url: str, killed: set[int]) -> int:
    """Messages claimed for sending whose answer is not recorded yet, by a process not killed: in
    flight. A killed process's claims (left until the reaper frees them) do not count."""
    rows = _rows(
        url,
        "SELECT h.label FROM messages m JOIN claim_holders h ON h.id = m.holder_id WHERE m.status = 'sending'",
    )
    return sum(1 for r in rows if pid_of(r["label"]) not in killed)


def _wait_in_flight(url: str, killed: set[int], *, timeout: float) -> int:
    """Until messages claimed by living processes are in flight (returns how many), or 0 after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if n := _claimed_by_living(url, killed):
            return n
        time.sleep(0.05)
    return 0


@dataclass
class Cluster:
    env: dict[str, str]
    tmp: Path
    sim_port: int
    receiver: Receiver
    procs: list[Proc] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)  # "host:pid" of every process killed
    pids: set[int] = field(default_factory=set)  # and their pids
    watch: RecoveryWatch | None = None
    logs: int = 0

    def start(self, *args: str, port: int | None = None) -> Proc:
        self.logs += 1
        env = dict(self.env)
        if port is not None:
            env["RCSGATE_PORT"] = str(port)
        proc = Proc(env, self.tmp / f"{args[0]}-{self.logs}.log", *args)
        self.procs.append(proc)
        return proc

    def kill(self, proc: Proc) -> None:
        self.killed.add(f"{HOST}:{proc.proc.pid}")
        self.pids.add(proc.proc.pid)
        at = time.monotonic()
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait(timeout=10)
        proc.handle.close()
        if self.watch is not None:
            self.watch.killed(proc.proc.pid, at)

    def simulator(self) -> Proc:
        sim = self.start(
            "simulator",
            "--port",
            str(self.sim_port),
            "--report-url",
            f"http://127.0.0.1:{self.env['RCSGATE_PORT']}{INGRESS}",
            "--sent-latency",
            "0.02",
            "--delivered-latency",
            "0.05",
            "--read-latency",
            "0.1",
            "--click-latency",
            "0.05",
            port=self.sim_port,
        )
        sim.wait_ready()
        return sim

    def close(self) -> None:
        if self.watch is not None:
            self.watch.wait_all(timeout=0)
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[[str], Cluster]]:
    made: list[Cluster] = []

    def make(database_url: str) -> Cluster:
        receiver = Receiver().start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
        sim_port = free_port()
        env.update(
            RCSGATE_DATABASE_URL=database_url,
            RCSGATE_VAR_DIR=str(tmp_path / "var"),
            RCSGATE_PORT=str(free_port()),
            RCSGATE_JWT_SECRET="j" * 40,
            RCSGATE_UPSTREAM_URL=f"http://127.0.0.1:{sim_port}",
            RCSGATE_UPSTREAM_SECRET=SECRET,
            # Not 1 s: with the suite's other tests on the same two cores, an answer the simulator
            # wrote can reach us after 1 s; the retry after that timeout is a second submit of an
            # answered message, which the checks below count as a double submit.
            RCSGATE_UPSTREAM_TIMEOUT_SECONDS="3",
            # The receiver shares two cores with everything else: a generous timeout, short retries.
            RCSGATE_WEBHOOK_TIMEOUT_SECONDS="5",
            RCSGATE_WEBHOOK_RETRY_SCHEDULE="1s,2s,4s,8s,15s,30s,60s",
            RCSGATE_UPSTREAM_BREAKER_COOLDOWN_SECONDS="2",
            # The claim lease (60 s) at its default; the liveness threshold near the least these
            # timeouts allow (timeout + 2 s), to keep the suite within its time (its default here is 12 s).
            RCSGATE_CLAIM_HOLDER_DEAD_SECONDS="8",
            RCSGATE_WEBHOOKS_ALLOW_PRIVATE="true",
            RCSGATE_WORKER_POLL_SECONDS="0.1",
            RCSGATE_RATE_LIMIT="100000/second",
        )
        made.append(c := Cluster(env=env, tmp=tmp_path, sim_port=sim_port, receiver=receiver))
        return c

    yield make
    for c in made:
        c.close()
        c.receiver.stop()


def _prepare(c: Cluster) -> str:
    """Schema, the demo account with funds for the whole campaign and the receiver as its callback
    URL; returns its API key."""
    cmd(c.env, "db", "upgrade")
    demo = json.loads(cmd(c.env, "demo", "--json").stdout)
    cmd(c.env, "accounts", "topup", str(demo["account_id"]), "10000")
    cmd(c.env, "accounts", "set-callback-url", str(demo["account_id"]), c.receiver.url)
    return str(demo["api_key"])


def _send_campaign(api: httpx.Client, phones: dict[str, str]) -> int:
    r = api.post(
        "/api/campaigns/rcs/send",
        json={
            "phones": [{"number": p} for p in phones],
            "sender": "demo_agent",
            "options": {
                "cards": [
                    {
                        "title": "Sale",
                        "text": "50% off today",
                        "suggestions": [{"text": "Open", "url": "https://example.com", "postback_data": "o"}],
                    }
                ]
            },
            "alternative_channel": {"sms": {"sender": "DemoSMS", "text": "50% off today"}},
        },
    )
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["id"])


def _settled(url: str, phones: dict[str, str]) -> bool:
    """Every message in the state its suffix gives (fallbacks included), every webhook delivered."""
    # Cheap counts first: this runs in the process that also hosts the webhook receiver.
    busy = _rows(
        url,
        "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered')"
        " + (SELECT count(*) FROM messages WHERE status IN ('accepted', 'sending', 'sent')) AS n",
    )
    if int(busy[0]["n"]):
        return False
    messages = _rows(url, "SELECT id, type, phone, status, parent_id FROM messages")
    rcs = {m["id"]: m for m in messages if m["type"] == "rcs"}
    sms = {m["parent_id"]: m for m in messages if m["type"] == "sms"}
    if len(rcs) != len(phones):
        return False
    for mid, m in rcs.items():
        want_rcs, want_sms = OUTCOMES[phones[m["phone"]]]
        if m["status"] != want_rcs:
            return False
        if want_sms is not None and (mid not in sms or sms[mid]["status"] != want_sms):
            return False
    return True


def _check_promises(c: Cluster, url: str, phones: dict[str, str], sim: httpx.Client) -> None:
    messages = _rows(url, "SELECT id, type, phone, status, parent_id, price, reserved, charged FROM messages")
    assert len(messages) == RECIPIENTS + sum(1 for s in phones.values() if OUTCOMES[s][1] is not None), (
        "an SMS fallback is missing or doubled"
    )
    assert {m["status"] for m in messages} <= {"read", "delivered", "undelivered", "failed"}

    # No double submit, except after a submit whose answer was lost with its killed process.
    journal = sim.get("/v1/submits").json()["messages"]
    assert set(map(int, journal)) == {m["id"] for m in messages}, "a message never reached the upstream"
    for mid, entry in journal.items():
        attempts = entry["attempts"]
        for before in attempts[:-1]:
            excused = (
                not before["answered"] or before["result"] == "unavailable" or before["client"] in c.killed
            )
            assert excused, f"message {mid} submitted again after an answered submit: {attempts}"

    # Money: charged once per delivered message, nothing left reserved, the books balance.
    ledger = _rows(url, "SELECT message_id, kind, amount FROM ledger_entries")
    charges: dict[int, int] = {}
    for entry in ledger:
        if entry["kind"] == "charge":
            assert entry["message_id"] not in charges, f"message {entry['message_id']} charged twice"
            charges[entry["message_id"]] = -int(entry["amount"])
    for m in messages:
        delivered = m["status"] in ("delivered", "read")
        assert (m["id"] in charges) == (delivered and m["price"] > 0), m
        assert int(m["charged"]) == charges.get(m["id"], 0), m
        assert int(m["reserved"]) == 0, m
    account = _rows(url, "SELECT balance, reserved FROM accounts")[0]
    topups = sum(int(e["amount"]) for e in ledger if e["kind"] == "topup")
    assert int(account["reserved"]) == 0
    assert int(account["balance"]) == topups - sum(charges.values())

    # Webhooks: every one the outbox holds was received, each message's final status among them.
    outbox = _rows(url, "SELECT webhook_id, message_id, body FROM webhook_deliveries WHERE kind = 'status'")
    received = {r.headers["webhook-id"] for r in list(c.receiver.received)}
    missing = [w["webhook_id"] for w in outbox if w["webhook_id"] not in received]
    assert not missing, f"{len(missing)} status callbacks never received"
    reported = {(w["message_id"], json.loads(w["body"]).get("status")) for w in outbox}
    for m in messages:
        if m["status"] != "failed":
            assert any(mid == m["id"] for mid, _ in reported), f"no status callback for {m}"


def test_workers_killed_every_second_keep_every_promise(
    pg_url: str, cluster: Callable[[str], Cluster]
) -> None:
    asyncio.run(_truncate_pg(pg_url))
    c = cluster(pg_url)
    key = _prepare(c)
    phones = _phones()
    api = c.start("api")
    api.wait_ready()
    sim = c.simulator()
    workers = [c.start("worker") for _ in range(3)]
    c.watch = watch = RecoveryWatch(pg_url)
    rng = random.Random(5)
    with httpx.Client(base_url=api.base, headers={"X-API-KEY": key}, timeout=30) as client:
        campaign = _send_campaign(client, phones)
        kills = 0  # made while messages were in flight
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = client.get(f"/api/campaigns/{campaign}").json()["data"]["status"]
            if status == "done":
                break
            time.sleep(rng.uniform(0.7, 1.3))
            # Kill while messages are claimed and unanswered (the dispatch is under way), not in
            # a lull or after the campaign's last claim.
            if not _wait_in_flight(pg_url, c.pids, timeout=5):
                continue
            victim = rng.randrange(len(workers))
            c.kill(workers[victim])
            workers[victim] = c.start("worker")
            kills += 1
        assert kills >= 3, f"only {kills} kills landed while messages were in flight"
        eventually(
            lambda: _settled(pg_url, phones),
            what="every message and webhook settled",
            timeout=120,
            interval=1,
        )
    with httpx.Client(base_url=sim.base, timeout=30) as sim_client:
        _check_promises(c, pg_url, phones, sim_client)
    assert len(c.killed) == kills
    watch.wait_all(timeout=30)
    watch.check("postgresql, api + 3 workers")
