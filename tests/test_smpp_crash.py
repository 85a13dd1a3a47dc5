"""SMPP crash and failover tests with real processes (docs/connectors/smpp.md, "Duplicates" and
"Routes and failover").

1. The process holding the SMPP bind is SIGKILLed while a 5000-recipient campaign's SMS fallbacks
   flow through the fake SMSC, a process of its own that outlives the kill. Embedded mode (SQLite,
   `rcsgate serve`) restarts the server; scaled mode (PostgreSQL, `rcsgate api` and two
   `rcsgate worker`) kills the worker holding the SMPP lock, and the other takes the binds over
   without a restart. At the end, from the database and the SMSC's stats: every SMS delivered once,
   charged once, no receipt lost, the duplicate submits the SMSC saw at most the window per kill,
   and the killed process's claims back in work within 15 s of the kill (recovery_watch.py; at the
   default claim lease and liveness settings). Printed: run with -s to see them.
2. Two SMSCs behind one route (`first`, then `second`); the first dies mid-run: every message ends
   delivered, those the first had not accepted went to the second, none it accepted was sent again.

The database is set up in-process with the services the CLI calls (`rcsgate demo`, `connectors
add-smpp`, `senders set-connector`, `routes add`): four CLI start-ups cost seconds on a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
from sqlalchemy import text

from conftest import _truncate_pg, eventually
from rcsgate.clock import SystemClock
from rcsgate.config import normalize_database_url
from rcsgate.services import accounts, connectors
from rcsgate.services.demo import ensure_demo
from rcsgate.store.db import Database
from recovery_watch import RecoveryWatch
from smpp_local import SmscThread
from test_processes import Proc, free_port

T = TypeVar("T")

pytestmark = pytest.mark.slow

PG_ENV = "RCSGATE_TEST_DATABASE_URL"
RECIPIENTS = 5000
FAILOVER_RECIPIENTS = 500
WINDOW = 10
# submit_sm_resp come this late: while SMS flow a full window is outstanding at the SMSC, so a kill
# finds up to a window of parts the SMSC took whose answers die with the process.
SMSC_LATENCY_MS = 20
KILL_AFTER_SUBMITS = 300  # "a few hundred" SMS through the SMSC before the kill
# A healthy failover: the dead link's queued submits come back "not bound", retry after 1-2 s and go
# to the second link, which takes the rest at a few hundred a second.
FAILOVER_SECONDS = 15
PREFIXES = ("38050", "38066", "38067", "38068", "38095")
SMS_TEXT = "50% off today"


def _phones(count: int) -> list[str]:
    """``count`` distinct Ukrainian mobile numbers ending 9990: no RCS (the built-in simulator answers
    not capable at once), so each gets its SMS fallback at once. Distinct, so the SMSC's duplicate
    count counts resends only."""
    return [f"{PREFIXES[n // 1000]}{n % 1000:03d}9990" for n in range(count)]


def _run(url: str, fn: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database.from_url(normalize_database_url(url))
        try:
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(main())


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    async def fetch(db: Database) -> list[dict[str, Any]]:
        async with db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(text(sql))]

    return _run(url, fetch)


def _poll(check: Callable[[], T | None], *, what: str, timeout: float, interval: float = 0.2) -> T:
    """What ``check`` returns once truthy; AssertionError after ``timeout`` seconds."""
    return cast(T, eventually(check, what=what, timeout=timeout, interval=interval))


class SmscProcess:
    """The fake SMSC as a process of its own (it outlives the kills); its stats from its JSON file."""

    def __init__(self, tmp: Path, name: str = "smsc", *, latency_ms: float = 0) -> None:
        self.stats_file = tmp / f"{name}-stats.json"
        self.log = tmp / f"{name}.log"
        self.handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rcsgate.connectors.smpp.fake_smsc",
                "--port",
                "0",
                "--stats-file",
                str(self.stats_file),
                "--latency-ms",
                str(latency_ms),
            ],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )
        self.port = int(_poll(self._listening, what="the fake SMSC listening", timeout=30, interval=0.05))

    def _listening(self) -> str | None:
        assert self.proc.poll() is None, self.log.read_text()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log.read_text())
        return match.group(1) if match else None

    def stats(self) -> dict[str, int]:
        assert self.proc.poll() is None, "the fake SMSC died:\n" + self.log.read_text()
        deadline = time.monotonic() + 5
        while True:
            try:
                return dict(json.loads(self.stats_file.read_text()))
            except (FileNotFoundError, json.JSONDecodeError):
                assert time.monotonic() < deadline, "no stats from the fake SMSC"
                time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.handle.close()


@dataclass
class Cluster:
    """The processes of one test, all killed at teardown."""

    env: dict[str, str]
    tmp: Path
    url: str
    procs: list[Proc] = field(default_factory=list)
    smscs: list[SmscProcess] = field(default_factory=list)
    logs: int = 0

    def start(self, *args: str) -> Proc:
        self.logs += 1
        proc = Proc(self.env, self.tmp / f"{args[0]}-{self.logs}.log", *args)
        self.procs.append(proc)
        return proc

    def smsc(self, name: str = "smsc", **options: Any) -> SmscProcess:
        smsc = SmscProcess(self.tmp, name, **options)
        self.smscs.append(smsc)
        return smsc

    @staticmethod
    def kill(proc: Proc) -> None:
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait(timeout=10)

    def close(self) -> None:
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
            p.handle.close()
        for s in self.smscs:
            s.close()


def _env(tmp: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env.update(
        RCSGATE_DATABASE_URL=database_url,
        RCSGATE_VAR_DIR=str(tmp / "var"),
        RCSGATE_PORT=str(free_port()),
        RCSGATE_JWT_SECRET="smpp-crash-test-secret-" + "x" * 40,
        # The claim lease (60 s) at its default: a killed process's claims come back when its beat
        # stops (dispatch/liveness.py), after the dead threshold below.
        RCSGATE_UPSTREAM_TIMEOUT_SECONDS="3",
        RCSGATE_WEBHOOK_TIMEOUT_SECONDS="3",
        # Near the shortest dead threshold these timeouts allow (timeout + 2 s): the suite waits less.
        RCSGATE_CLAIM_HOLDER_DEAD_SECONDS="6",
        RCSGATE_CONNECTORS_REFRESH_SECONDS="0.5",
        RCSGATE_WORKER_POLL_SECONDS="0.1",
        RCSGATE_RATE_LIMIT="100000/second",
    )
    return env


def _sqlite(tmp: Path, template: Path) -> str:
    """A migrated SQLite database where `rcsgate serve` looks for it (RCSGATE_VAR_DIR)."""
    (tmp / "var").mkdir(parents=True, exist_ok=True)
    shutil.copy(template, tmp / "var" / "rcsgate.db")
    return f"sqlite:///{tmp / 'var' / 'rcsgate.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Cluster]:
    if request.param == "sqlite":
        url = _sqlite(tmp_path, sqlite_template)
    else:
        if not os.environ.get(PG_ENV):
            pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)")
        url = request.getfixturevalue("pg_url")
        asyncio.run(_truncate_pg(url))
    c = Cluster(env=_env(tmp_path, url), tmp=tmp_path, url=url)
    try:
        yield c
    finally:
        c.close()


def _setup(
    url: str,
    var_dir: Path,
    links: dict[str, int],
    *,
    sender_connector: str | None = None,
    route: list[str] | None = None,
) -> str:
    """The demo account with funds for every SMS, the SMPP connectors ``links`` (name → port), the
    demo SMS sender (DemoSMS, id 1) on ``sender_connector`` or SMS to 380… on ``route``; the API key."""

    async def setup(db: Database) -> str:
        clock = SystemClock()
        demo = await ensure_demo(db, clock, var_dir=var_dir)
        await accounts.topup(db, clock, account_id=demo.account_id, amount="10000")
        for name, port in links.items():
            await connectors.add_smpp(
                db,
                clock,
                name=name,
                host="127.0.0.1",
                port=port,
                system_id="rcsgate",
                password="secret",
                window=WINDOW,
                # Generous on two loaded cores: a timeout would be an extra (legitimate) resend.
                response_timeout=20.0,
                enquire_link_seconds=5.0,
            )
        if sender_connector is not None:
            await connectors.set_sender_connector(db, sender_id=1, connector=sender_connector)
        if route is not None:
            await connectors.add_route(db, clock, channel="sms", prefix="380", names=route)
        return demo.api_key

    return _run(url, setup)


def _send_campaign(base: str, key: str, phones: list[str]) -> int:
    with httpx.Client(base_url=base, headers={"X-API-KEY": key}, timeout=60) as api:
        r = api.post(
            "/api/campaigns/rcs/send",
            json={
                "phones": [{"number": p} for p in phones],
                "sender": "demo_agent",
                "options": {"text": "Hello over RCS"},
                "alternative_channel": {"sms": {"sender": "DemoSMS", "text": SMS_TEXT}},
            },
        )
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["id"])


def _log_count(proc: Proc, event: str) -> int:
    return proc.log.read_text().count(event)


def _sms_claimed(url: str) -> int:
    """SMS messages claimed for sending and not answered yet."""
    [row] = _rows(url, "SELECT count(*) AS n FROM messages WHERE type = 'sms' AND status = 'sending'")
    return int(row["n"])


def _settled(url: str, count: int) -> bool:
    """Every SMS fallback created and delivered, nothing left to send or to hear about."""
    [row] = _rows(
        url,
        "SELECT (SELECT count(*) FROM messages WHERE type = 'sms' AND status = 'delivered') AS delivered,"
        " (SELECT count(*) FROM messages WHERE status IN ('accepted', 'sending', 'sent')) AS busy",
    )
    return int(row["delivered"]) == count and int(row["busy"]) == 0


def _check_messages_and_money(url: str, phones: list[str]) -> dict[int, dict[str, Any]]:
    """Every RCS message undelivered with exactly one SMS fallback, delivered once (one `delivered`
    event), charged once; nothing reserved; the balance is top-ups minus charges. The SMS by id."""
    messages = _rows(
        url, "SELECT id, type, phone, status, parent_id, price, reserved, charged, upstream FROM messages"
    )
    rcs = {m["id"]: m for m in messages if m["type"] == "rcs"}
    sms = {m["id"]: m for m in messages if m["type"] == "sms"}
    assert len(rcs) == len(phones) and sorted(m["phone"] for m in rcs.values()) == sorted(phones)
    assert {m["status"] for m in rcs.values()} == {"undelivered"}
    children = Counter(m["parent_id"] for m in sms.values())
    assert set(children) == set(rcs), "an RCS message without its SMS fallback"
    doubled = {p: n for p, n in children.items() if n != 1}
    assert not doubled, f"SMS fallbacks doubled: {doubled}"
    not_delivered = [m for m in sms.values() if m["status"] != "delivered"]
    assert not not_delivered, f"{len(not_delivered)} SMS not delivered, e.g. {not_delivered[:3]}"
    delivered = Counter(
        int(r["message_id"])
        for r in _rows(url, "SELECT message_id FROM message_events WHERE status = 'delivered'")
    )
    wrong = [(mid, delivered.get(mid, 0)) for mid in sms if delivered.get(mid, 0) != 1]
    assert not wrong, f"SMS not delivered exactly once in their history: {wrong[:5]}"

    ledger = _rows(url, "SELECT message_id, kind, amount FROM ledger_entries")
    charges: dict[int, int] = {}
    for entry in ledger:
        if entry["kind"] == "charge":
            assert entry["message_id"] not in charges, f"message {entry['message_id']} charged twice"
            charges[int(entry["message_id"])] = -int(entry["amount"])
    assert set(charges) == set(sms), "the charges are not exactly one per delivered SMS"
    for m in sms.values():
        assert int(m["price"]) > 0 and charges[m["id"]] == int(m["price"]) == int(m["charged"]), m
    for m in messages:
        assert int(m["reserved"]) == 0, m
        if m["type"] == "rcs":
            assert int(m["charged"]) == 0, m
    [account] = _rows(url, "SELECT balance, reserved FROM accounts")
    topups = sum(int(e["amount"]) for e in ledger if e["kind"] == "topup")
    assert int(account["reserved"]) == 0
    assert int(account["balance"]) == topups - sum(charges.values())
    return sms


def _parts(url: str) -> list[dict[str, Any]]:
    return _rows(
        url,
        "SELECT p.message_id, p.part_no, p.state, c.name AS connector FROM smpp_parts p"
        " JOIN connectors c ON c.id = p.connector_id",
    )


def _skipped_sent(url: str, sms: dict[int, dict[str, Any]], connector: str | None) -> list[int]:
    """SMS whose history has no `sent` step, or that do not name the connector that sent them."""
    sent = {
        int(r["message_id"])
        for r in _rows(url, "SELECT message_id FROM message_events WHERE status = 'sent'")
    }
    return sorted(
        mid
        for mid, m in sms.items()
        if mid not in sent or (connector is not None and m["upstream"] != connector)
    )


# --------------------------------------------------------------------------- 1. crash


def test_killing_the_bind_holder_mid_flow_keeps_every_promise(cluster: Cluster) -> None:
    c = cluster
    embedded = c.url.startswith("sqlite")
    engine = "sqlite, serve" if embedded else "postgresql, api + 2 workers"
    started_at = time.monotonic()
    smsc = c.smsc(latency_ms=SMSC_LATENCY_MS)
    key = _setup(c.url, c.tmp / "var", {"smsc1": smsc.port}, sender_connector="smsc1")
    phones = _phones(RECIPIENTS)

    if embedded:
        front = holder = c.start("serve")
        front.wait_ready()
        workers: list[Proc] = []
    else:
        front = c.start("api")
        workers = [c.start("worker"), c.start("worker")]
        front.wait_ready()
        holders = _poll(
            lambda: [w for w in workers if _log_count(w, "smpp_binds_taken")],
            what="a worker taking the SMPP binds",
            timeout=60,
        )
        assert len(holders) == 1, "two workers hold the SMPP binds"
        holder = holders[0]
    holder.wait_log("smpp_bound")
    phases = {"ready": time.monotonic() - started_at}
    _send_campaign(front.base, key, phones)

    # Kill while SMS flow: the SMSC has taken a few hundred, SMS are claimed and unanswered.
    _poll(
        lambda: smsc.stats()["submits"] >= KILL_AFTER_SUBMITS,
        what=f"{KILL_AFTER_SUBMITS} submits at the SMSC",
        timeout=120,
        interval=0.05,
    )
    in_flight = _poll(lambda: _sms_claimed(c.url), what="SMS claimed at the kill", timeout=30, interval=0.02)
    watch = RecoveryWatch(c.url)
    # Counted before the kill: the other worker may take the binds over at once.
    [survivor] = [w for w in workers if w is not holder] or [holder]
    before = _log_count(survivor, "smpp_binds_taken")
    killed_at = time.monotonic()
    c.kill(holder)
    phases["kill"] = time.monotonic() - started_at
    at_kill = smsc.stats()  # what the SMSC had taken when the bind died (the file lags 0.2 s)
    watch.killed(holder.proc.pid, killed_at)
    assert at_kill["submits"] < RECIPIENTS, f"the kill landed after the last SMS: {at_kill}"

    replacement = None
    if embedded:
        holder = c.start("serve")
        holder.wait_ready()
    else:
        # The other worker takes the lock over at its next refresh, without a restart.
        _poll(
            lambda: _log_count(survivor, "smpp_binds_taken") > before,
            what="the surviving worker taking the SMPP binds over",
            timeout=30,
        )
        survivor.wait_log("smpp_bound")
        replacement = c.start("worker")
    phases["taken over"] = time.monotonic() - started_at

    watch.wait_all(timeout=60)
    _poll(lambda: _settled(c.url, RECIPIENTS), what="every SMS delivered", timeout=240, interval=0.5)
    phases["settled"] = time.monotonic() - started_at
    # The stats file is rewritten every 0.2 s: a copy from before the last submits (all receipts
    # acknowledged so far, the last SMS not yet taken) can be read after the database settled.
    stats = _poll(
        lambda: s if (s := smsc.stats())["pending_receipts"] == 0 and s["submits"] >= RECIPIENTS else None,
        what="every receipt acknowledged",
        timeout=60,
    )

    sms = _check_messages_and_money(c.url, phones)
    parts = _parts(c.url)
    ours = [p for p in parts if p["message_id"] is not None]
    # Receipts of submits whose answers died with the process: no part of ours to join.
    unmatched = [p for p in parts if p["message_id"] is None]
    per_message = Counter(int(p["message_id"]) for p in ours)
    assert set(per_message) == set(sms), "an SMS without its accepted part"
    assert set(per_message.values()) == {1}, "a one-part SMS with two accepted parts"
    assert {p["state"] for p in ours} == {"delivered"}, "a part never got its receipt"
    assert {p["state"] for p in unmatched} <= {"delivered"}
    if replacement is not None:
        assert not _log_count(replacement, "smpp_binds_taken"), "the replacement took the binds too"

    kills = 1
    duplicates = stats["duplicates"]
    report = (
        f"[{engine}] {kills} kill with {in_flight} SMS claimed, at {at_kill['submits']} SMSC submits;"
        f" SMSC submits {stats['submits']} for {RECIPIENTS} SMS: DUPLICATES {duplicates} (window {WINDOW});"
        f" receipts sent {stats['receipts_sent']}, acked {stats['receipts_acked']}, unmatched"
        f" {len(unmatched)}; max outstanding {stats['max_outstanding']}; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
    )
    print("\n" + report)
    assert stats["pending_receipts"] == 0, report
    assert stats["max_outstanding"] <= WINDOW, report
    assert stats["submits"] == RECIPIENTS + duplicates, report
    # Each resend is of a submit the SMSC took and whose answer was lost: its receipt is unmatched.
    assert len(unmatched) == duplicates, report
    assert duplicates <= WINDOW * kills, f"more duplicate submits than the window per kill: {report}"

    # A receipt redelivered after the kill may find its SMS back in `accepted` (its claim lapsed):
    # the history still gets `sent`, and the message its upstream.
    skipped = _skipped_sent(c.url, sms, "smsc1")
    assert not skipped, f"SMS without a `sent` step or upstream: {skipped[:10]} ({len(skipped)})"
    watch.check(engine)


# --------------------------------------------------------------------------- 2. failover


def test_route_fails_over_when_the_first_smsc_dies_mid_run(
    tmp_path: Path, sqlite_template: Path, started: list[Proc]
) -> None:
    started_at = time.monotonic()
    url = _sqlite(tmp_path, sqlite_template)
    env = _env(tmp_path, url)
    phones = _phones(FAILOVER_RECIPIENTS)
    # The first answers late, so submits are in flight (taken, unanswered) when it dies.
    with SmscThread(latency=SMSC_LATENCY_MS / 1000) as first, SmscThread() as second:
        key = _setup(
            url, tmp_path / "var", {"first": first.port, "second": second.port}, route=["first", "second"]
        )
        serve = Proc(env, tmp_path / "serve.log", "serve")
        started.append(serve)
        serve.wait_ready()
        _poll(
            lambda: (
                first.on_loop(lambda s: s.bound_sessions()) and second.on_loop(lambda s: s.bound_sessions())
            ),
            what="both links bound",
            timeout=30,
            interval=0.1,
        )
        _send_campaign(serve.base, key, phones)
        _poll(
            lambda: first.on_loop(lambda s: len(s.submits)) >= FAILOVER_RECIPIENTS // 4,
            what="SMS through the first link",
            timeout=120,
            interval=0.02,
        )
        first.stop_smsc()  # the first link dies for good, mid-run
        died_at = time.monotonic()
        at_death = len(first.on_loop(lambda s: list(s.submits)))
        assert at_death < FAILOVER_RECIPIENTS, "the first SMSC died after the last SMS"

        deadline = died_at + FAILOVER_SECONDS
        while not _settled(url, FAILOVER_RECIPIENTS):
            if time.monotonic() > deadline:
                [row] = _rows(
                    url, "SELECT count(*) AS n FROM messages WHERE type = 'sms' AND status <> 'delivered'"
                )
                raise AssertionError(
                    f"a dead link stalls failover: {row['n']} of {FAILOVER_RECIPIENTS} SMS still"
                    f" undelivered {FAILOVER_SECONDS} s after the first SMSC died at {at_death} submits, the"
                    f" second having {len(second.on_loop(lambda s: list(s.submits)))}"
                )
            time.sleep(0.5)
        failover = time.monotonic() - died_at
        _poll(
            lambda: second.on_loop(lambda s: s.pending_receipts()) == 0,
            what="the second SMSC's receipts acknowledged",
            timeout=30,
        )
        first_submits = first.on_loop(lambda s: list(s.submits))
        second_submits = second.on_loop(lambda s: list(s.submits))
        second_duplicates = second.on_loop(lambda s: s.duplicates())

    sms = _check_messages_and_money(url, phones)
    phone_of = {mid: m["phone"] for mid, m in sms.items()}
    parts = [p for p in _parts(url) if p["message_id"] is not None]
    per_message = Counter(int(p["message_id"]) for p in parts)
    assert set(per_message) == set(sms) and set(per_message.values()) == {1}
    assert {p["state"] for p in parts} == {"delivered"}
    accepted_by = {phone_of[int(p["message_id"])]: p["connector"] for p in parts}
    at_first = Counter(s.destination_addr for s in first_submits)
    at_second = Counter(s.destination_addr for s in second_submits)
    accepted_first = {p for p, name in accepted_by.items() if name == "first"}
    # Those the first did not accept went to the second, once each; none it accepted did.
    assert set(phones) - accepted_first <= set(at_second), (
        "an SMS the first did not take never reached the second"
    )
    assert not accepted_first & set(at_second), "a part the first SMSC accepted was sent again"
    assert set(at_second.values()) == {1} and second_duplicates == 0
    # Sent to both: written to the first as it died, no answer (it may have taken them).
    in_flight = set(at_first) & set(at_second)
    report = (
        f"[failover] the first SMSC took {len(at_first)} submits ({len(accepted_first)} recorded) before"
        f" it died; the SECOND GOT {len(second_submits)}, {len(in_flight)} of them in flight at the first;"
        f" failover done {failover:.1f} s after the death; {time.monotonic() - started_at:.1f} s in all"
    )
    print("\n" + report)
    assert len(accepted_first) + len(second_submits) == FAILOVER_RECIPIENTS, report
    assert len(in_flight) <= WINDOW, report
    assert second_submits, report
    skipped = _skipped_sent(url, sms, None)
    assert not skipped, f"SMS without a `sent` step: {skipped[:10]}"
    for m in sms.values():
        assert m["upstream"] == accepted_by[m["phone"]], m
