"""The upstream outside our process: a real `rcsgate simulator` and a real `rcsgate serve` (SQLite)
talking HTTP both ways. Happy path, fallback and the ingress's signature check; a batch under
injected faults (5xx, resets, processed-then-dropped answers) reaching its correct end states
without duplicate sends; a dead upstream tripping the circuit breaker, then recovering.

Also, without processes: reports for a message whose submit answer was lost apply (the message
sits in `accepted` waiting for its retry, while the upstream has taken it)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from conftest import run
from rcsgate.clock import ManualClock
from rcsgate.connectors.base import Accepted, StatusReport, TryLater
from rcsgate.connectors.simulator_wire import encode_reports, sign_reports
from rcsgate.domain.rcs_content import RcsContent, Recipient, SingleRcsSend
from rcsgate.domain.records import Principal
from rcsgate.services import dispatching, sending
from rcsgate.services.demo import ensure_demo
from rcsgate.services.repeats import RequestKey
from rcsgate.store.db import Database
from test_processes import Proc, cmd, free_port

pytestmark = pytest.mark.slow
T = TypeVar("T")

SECRET = "shared-secret-of-the-tests-0123456789"
INGRESS = "/api/upstream/simulator/events"
CLIENT_TIMEOUT = 0.5  # RCSGATE_UPSTREAM_TIMEOUT_SECONDS; the simulator holds dropped answers for 1 s
THRESHOLD = 5
COOLDOWN = 1.0


@dataclass
class Stack:
    api: httpx.Client
    sim: httpx.Client
    db_path: Path
    serve: Proc
    simulator: Proc
    sent: int = 0
    texts: set[str] = field(default_factory=set)

    def send(self, phone: str, *, sms: bool = True) -> int:
        # A distinct text per request: the same body twice within 10 s is refused as a repeat.
        self.sent += 1
        body: dict[str, Any] = {
            "phone": {"number": phone},
            "sender": "demo_agent",
            "options": {"text": f"hello #{self.sent}"},
        }
        if sms:
            body["alternative_channel"] = {
                "sms": {"text": "Hello from SMS", "sender": "DemoSMS", "validity": 72}
            }
        r = self.api.post("/api/messages/rcs/send", json=body)
        assert r.status_code == 200, r.text
        return int(r.json()["data"]["id"])

    def rows(self) -> dict[int, sqlite3.Row]:
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            return {
                r["id"]: r for r in conn.execute("SELECT id, type, status, parent_id, attempts FROM messages")
            }

    def events(self, detail_prefix: str) -> int:
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as conn:
            query = "SELECT count(*) FROM message_events WHERE detail LIKE ?"
            return int(conn.execute(query, (detail_prefix + "%",)).fetchone()[0])

    def faults(self, **knobs: float) -> None:
        r = self.sim.put("/v1/faults", json=knobs)
        assert r.status_code == 200, r.text

    def submits(self) -> dict[int, dict[str, Any]]:
        return {int(k): v for k, v in self.sim.get("/v1/submits").json()["messages"].items()}

    def stats(self) -> dict[str, Any]:
        return dict(self.sim.get("/v1/stats").json())


def eventually(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("upstream")
    api_port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env.update(
        RCSGATE_DATABASE_URL=f"sqlite:///{tmp / 'var' / 'rcsgate.db'}",
        RCSGATE_VAR_DIR=str(tmp / "var"),
        RCSGATE_PORT=str(api_port),
        RCSGATE_UPSTREAM_URL=f"http://127.0.0.1:{sim_port}",
        RCSGATE_UPSTREAM_SECRET=SECRET,
        RCSGATE_UPSTREAM_TIMEOUT_SECONDS=str(CLIENT_TIMEOUT),
        RCSGATE_UPSTREAM_BREAKER_THRESHOLD=str(THRESHOLD),
        RCSGATE_UPSTREAM_BREAKER_COOLDOWN_SECONDS=str(COOLDOWN),
    )
    cmd(env, "db", "upgrade")
    key = json.loads(cmd(env, "demo", "--json").stdout)["api_key"]
    # The secret comes from RCSGATE_UPSTREAM_SECRET, as an operator would share it.
    simulator = Proc(
        {**env, "RCSGATE_PORT": str(sim_port)},
        tmp / "simulator.log",
        "simulator",
        "--port",
        str(sim_port),
        "--report-url",
        f"http://127.0.0.1:{api_port}{INGRESS}",
        # Delivery (0.65 s) lands after the client gave up on a dropped answer (0.5 s) and before
        # its retry (~1 s): the report finds the message in `accepted`.
        "--sent-latency",
        "0.05",
        "--delivered-latency",
        "0.6",
        "--read-latency",
        "0.3",
        "--hang-seconds",
        "1",
        "--fault-seed",
        "7",
    )
    serve = Proc(env, tmp / "serve.log", "serve")
    try:
        simulator.wait_ready()
        serve.wait_ready()
        with (
            httpx.Client(base_url=serve.base, headers={"X-API-KEY": key}, timeout=10) as api,
            httpx.Client(base_url=simulator.base, timeout=10) as sim,
        ):
            yield Stack(
                api=api, sim=sim, db_path=tmp / "var" / "rcsgate.db", serve=serve, simulator=simulator
            )
        simulator.proc.send_signal(signal.SIGTERM)
        assert simulator.proc.wait(timeout=10) in (0, -signal.SIGTERM), simulator.log.read_text()
        assert "simulator_stopped" in simulator.log.read_text()
        serve.stop()
    finally:
        for p in (simulator, serve):
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()


def api_message(stack: Stack, message_id: int) -> dict[str, Any]:
    r = stack.api.get("/api/messages", params={"filter[id]": message_id})
    assert r.status_code == 200, r.text
    return dict(r.json()["data"][0])


def test_messages_through_the_http_upstream(stack: Stack) -> None:
    normal = stack.send("380661231231")
    fallback = stack.send("380661239990")
    flaky = stack.send("380661239997", sms=False)

    read = eventually(
        lambda: (m := api_message(stack, normal))["status"] == "read" and m, timeout=10, what="read"
    )
    assert read["sent_at"] and read["delivered_at"]
    assert api_message(stack, fallback)["status"] == "undelivered"
    sms_id = eventually(
        lambda: api_message(stack, fallback)["alternative_channels"]["sms"]["id"], timeout=10, what="fallback"
    )[0]
    eventually(lambda: api_message(stack, sms_id)["status"] == "delivered", timeout=10, what="SMS delivered")

    # 9997: "unreachable" (a try-later answer) for the first 3 submits, retried with backoff (1 + 2 + 4 s), then read.
    eventually(lambda: api_message(stack, flaky)["status"] == "read", timeout=20, what="9997 read")
    attempts = stack.submits()[flaky]["attempts"]
    assert [a["result"] for a in attempts] == ["unavailable"] * 3 + ["accepted"]
    assert all(a["answered"] for a in attempts)
    assert stack.submits()[normal]["submits"] == 1
    eventually(lambda: stack.stats()["pending_reports"] == 0, timeout=10, what="all reports pushed")

    # The ingress is not in the public API document, and only the shared secret opens it.
    assert INGRESS not in stack.api.get("/openapi.json").json()["paths"]
    body = encode_reports([StatusReport(normal, "undelivered", datetime.now(UTC))])
    forged = sign_reports("not-the-shared-secret-at-all", body)
    assert stack.api.post(INGRESS, content=body, headers=forged).status_code == 401
    assert (
        stack.api.post(INGRESS, content=body, headers={"content-type": "application/json"}).status_code == 401
    )
    signed = sign_reports(SECRET, body)
    assert stack.api.post(INGRESS, content=body + b" ", headers=signed).status_code == 401  # body altered
    huge = b"{" + b" " * (1024 * 1024) + b"}"
    assert stack.api.post(INGRESS, content=huge, headers=sign_reports(SECRET, huge)).status_code == 413
    junk = b'{"reports": [{"type": "status", "message_id": "x"}]}'
    assert stack.api.post(INGRESS, content=junk, headers=sign_reports(SECRET, junk)).status_code == 422
    # A genuine but late report changes nothing: the message is read, which is final.
    r = stack.api.post(INGRESS, content=body, headers=signed)
    assert r.status_code == 200 and r.json() == {"received": 1, "changed": 0}
    assert api_message(stack, normal)["status"] == "read"


# What each suffix ends as (RCS status, and its SMS fallback's status, if any).
EXPECTED: dict[str, tuple[str, str | None]] = {
    "1231": ("read", None),
    "9990": ("undelivered", "delivered"),
    "9991": ("undelivered", "delivered"),
    "9993": ("delivered", None),
    "9994": ("read", None),
    "9995": ("failed", None),
    "9996": ("undelivered", "undelivered"),
}


def test_faults_end_in_the_right_states_without_duplicate_sends(stack: Stack) -> None:
    stack.faults(error_rate=0.1, reset_rate=0.1, timeout_rate=0.1, seed=7)
    try:
        suffixes = list(EXPECTED) * 7
        sent = {stack.send(f"38067{i:03d}" + suffix[-4:]): suffix for i, suffix in enumerate(suffixes)}

        def done() -> bool:
            rows = stack.rows()
            for mid, suffix in sent.items():
                rcs, sms = EXPECTED[suffix]
                children = [r for r in rows.values() if r["parent_id"] == mid]
                if rows[mid]["status"] != rcs or [c["status"] for c in children] != ([sms] if sms else []):
                    return False
            return True

        # Faults stay on while most of the batch finishes; then the stragglers' next retry goes
        # through, which bounds the test's time (backoff doubles with every failure).
        deadline = time.monotonic() + 12
        while not done() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stack.faults(error_rate=0, reset_rate=0, timeout_rate=0)
    eventually(done, timeout=30, what="every message in its end state")
    eventually(lambda: stack.stats()["pending_reports"] == 0, timeout=10, what="all reports pushed")
    assert done()  # and nothing moved afterwards

    rows = stack.rows()
    ids = set(sent) | {r["id"] for r in rows.values() if r["parent_id"] in sent}
    journal = {mid: entry["attempts"] for mid, entry in stack.submits().items() if mid in ids}
    kinds = [a["fault"] for attempts in journal.values() for a in attempts]
    assert {"error", "reset", "timeout"} <= set(kinds), kinds
    for mid, attempts in journal.items():
        accepted = [a for a in attempts if a["result"] == "accepted"]
        # Accepted more than once only after an answer that never arrived; and once the gateway
        # heard "accepted", it never submitted that message again.
        assert not any(a["answered"] for a in accepted[:-1]), (mid, attempts)
        answered = [i for i, a in enumerate(attempts) if a["result"] == "accepted" and a["answered"]]
        assert answered in ([], [len(attempts) - 1]), (mid, attempts)
        if rows[mid]["status"] in ("sent", "delivered", "read"):
            assert accepted, (mid, attempts)

    # The nasty case for certain, whatever the draws above gave: the upstream takes the message and
    # the answer is lost; the message still ends right, taken once.
    stack.faults(timeout_rate=1.0)
    try:
        lost = stack.send("380671119993", sms=False)
        eventually(
            lambda: any(a["result"] == "accepted" for a in stack.submits().get(lost, {}).get("attempts", [])),
            timeout=10,
            what="a processed-then-dropped submit",
        )
    finally:
        stack.faults(timeout_rate=0)
    eventually(lambda: stack.rows()[lost]["status"] == "delivered", timeout=20, what="9993 delivered")
    attempts = stack.submits()[lost]["attempts"]
    assert attempts[0]["fault"] == "timeout" and not attempts[0]["answered"], attempts
    assert sum(a["result"] == "accepted" and a["answered"] for a in attempts) <= 1, attempts


def test_dead_upstream_opens_the_breaker_then_recovers(stack: Stack) -> None:
    before = stack.stats()["submits"]
    refused_before = stack.events("retry: circuit open")
    log_start = len(stack.serve.log.read_text())
    stack.faults(error_rate=1.0)
    try:
        started = time.monotonic()
        ids = [stack.send(f"38068{i:03d}1231") for i in range(20)]
        time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
        calls = stack.stats()["submits"] - before
        elapsed = time.monotonic() - started
        log = stack.serve.log.read_text()[log_start:]
        assert "circuit_opened" in log
        # Up to THRESHOLD failures open it, a few submits were in flight meanwhile, then one probe
        # per cool-down: far fewer calls than messages, let alone than the gateway's attempts.
        assert calls <= THRESHOLD + 3 + elapsed / COOLDOWN + 1, (calls, elapsed)
        # While the circuit is open the dispatcher claims nothing (the connector admits no submit),
        # so messages wait unclaimed rather than burn attempts and grow their backoff.
        attempts = sum(stack.rows()[mid]["attempts"] for mid in ids)
        assert attempts <= calls + 2, (attempts, calls)
        assert stack.events("retry: circuit open") - refused_before <= 2
    finally:
        stack.faults(error_rate=0)

    def all_read() -> bool:
        rows = stack.rows()
        return all(rows[mid]["status"] == "read" for mid in ids)

    eventually(all_read, timeout=30, what="all messages read after the upstream came back")
    log = stack.serve.log.read_text()[log_start:]
    assert log.index("circuit_opened") < log.rindex("circuit_half_open") < log.rindex("circuit_closed")
    journal = stack.submits()
    for mid in ids:
        attempts = journal[mid]["attempts"]
        assert [a["result"] for a in attempts if a["answered"] and a["result"] == "accepted"] == ["accepted"]
        assert all(a["fault"] == "error" for a in attempts[:-1])


# ----------------------------------------------------------------------------- without processes


def test_report_applies_to_a_message_waiting_to_retry_after_a_lost_answer(
    db_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()

    async def scenario(db: Database) -> tuple[str, str]:
        demo = await ensure_demo(db, clock, var_dir=tmp_path)
        request = SingleRcsSend(
            sender="demo_agent",
            content=RcsContent(text="hello"),
            validity_seconds=3600,
            sms_alternative=None,
            callback_url=None,
            tariff_code=None,
            add_to_contact_book=False,
            check_stop_list=False,
            recipient=Recipient(number="380661231231"),
        )
        principal = Principal(account_id=demo.account_id, key_id=1, mode="live")
        key = RequestKey(body_hash="lost-answer", idempotency_key=None)
        view = await sending.send_single(
            db, clock, principal=principal, request=request, key=key, duplicate_window=10
        )
        # The submit timed out: the gateway puts the message back for a retry...
        [message] = await dispatching.claim(db, clock, limit=10, lease_seconds=30)
        await dispatching.record_submit(
            db, clock, message=message, result=TryLater("upstream timeout"), upstream="t"
        )
        waiting = await _status(db, view.id)
        # ...but the upstream had taken it: its report is the only word we get.
        await dispatching.apply_report(db, clock, StatusReport(view.id, "delivered", clock.now()))
        # The retry's resubmission is answered as a duplicate, and changes nothing.
        assert not await dispatching.claim(db, clock, limit=10, lease_seconds=30)
        await dispatching.record_submit(db, clock, message=message, result=Accepted("sim-x"), upstream="t")
        return waiting, await _status(db, view.id)

    assert run(scenario, db_url) == ("accepted", "delivered")


async def _status(db: Database, message_id: int) -> str:
    from sqlalchemy import select

    from rcsgate.store.tables import messages

    async with db.read() as conn:
        return str(
            (await conn.execute(select(messages.c.status).where(messages.c.id == message_id))).scalar()
        )
