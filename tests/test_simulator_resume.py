"""`make run`'s process with its embedded simulator, SIGKILLed twice mid-campaign (once while reports
of delivery are owed, once while reads are owed): after each restart the simulator takes back what it
owed, and every message ends exactly as its number's suffix says — delivered ones read, undelivered
ones with their SMS fallback delivered — with each message charged once."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from conftest import eventually
from test_crash_recovery import _rows
from test_processes import Proc, cmd, free_port
from test_simulator_service import EXPECTED

pytestmark = pytest.mark.slow

RECIPIENTS = 600


def test_embedded_simulator_loses_no_report_across_sigkills(tmp_path: Path, started: list[Proc]) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'rcsgate.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env.update(
        RCSGATE_DATABASE_URL=url,
        RCSGATE_VAR_DIR=str(tmp_path / "var"),
        RCSGATE_PORT=str(free_port()),
        # Reports owed for a while, so that a kill finds many of them still pending.
        RCSGATE_SIMULATOR_DELIVERED_LATENCY="1.5",
        RCSGATE_SIMULATOR_READ_LATENCY="3",
        RCSGATE_CLAIM_LEASE_SECONDS="11",
    )
    cmd(env, "db", "upgrade")
    demo = json.loads(cmd(env, "demo", "--json").stdout)
    cmd(env, "accounts", "topup", str(demo["account_id"]), "1000")
    suffixes = list(EXPECTED)
    phones = {
        f"380{50 + n // 1000}{n % 1000:03d}{suffixes[n % len(suffixes)]}": suffixes[n % len(suffixes)]
        for n in range(RECIPIENTS)
    }

    serve = Proc(env, tmp_path / "serve.log", "serve")
    started.append(serve)
    serve.wait_ready()
    with httpx.Client(base_url=serve.base, headers={"X-API-KEY": demo["api_key"]}, timeout=30) as client:
        r = client.post(
            "/api/campaigns/rcs/send",
            json={
                "phones": [{"number": p} for p in phones],
                "sender": "demo_agent",
                "options": {"text": "Sale today"},
                "alternative_channel": {"sms": {"sender": "DemoSMS", "text": "Sale today"}},
            },
        )
        assert r.status_code == 200, r.text
    owed = {
        # Sent, their delivery reports owed.
        "sent": "SELECT count(*) AS n FROM messages WHERE type = 'rcs' AND status = 'sent'",
        # Delivered, their read reports owed.
        "delivered": "SELECT count(*) AS n FROM messages WHERE type = 'rcs' AND status = 'delivered'"
        " AND phone NOT LIKE '%9993'",
    }
    for waiting in ("sent", "delivered"):
        eventually(
            lambda w=waiting: _rows(url, owed[w])[0]["n"] >= 50,
            what=f"reports owed ({waiting})",
            timeout=60,
            interval=0.1,
        )
        serve.proc.send_signal(signal.SIGKILL)
        serve.proc.wait(timeout=10)
        serve = Proc(env, tmp_path / "serve.log", "serve")
        started.append(serve)
        serve.wait_ready()

    def settled() -> bool:
        rows = _rows(url, "SELECT id, type, phone, status, parent_id FROM messages")
        rcs = {m["id"]: m for m in rows if m["type"] == "rcs"}
        sms = {m["parent_id"]: m for m in rows if m["type"] == "sms"}
        for mid, m in rcs.items():
            want, want_sms = EXPECTED[phones[m["phone"]]]
            if m["status"] != want or (want_sms and (mid not in sms or sms[mid]["status"] != want_sms)):
                return False
        return len(rcs) == RECIPIENTS

    eventually(settled, what="every message as its suffix says", timeout=90, interval=0.5)
    charges = _rows(
        url, "SELECT message_id, count(*) AS n FROM ledger_entries WHERE kind = 'charge' GROUP BY message_id"
    )
    assert all(c["n"] == 1 for c in charges)
    delivered = _rows(
        url, "SELECT count(*) AS n FROM messages WHERE status IN ('delivered', 'read') AND price > 0"
    )
    assert len(charges) == delivered[0]["n"]
    assert _rows(url, "SELECT sum(reserved) AS n FROM accounts")[0]["n"] == 0
    serve.stop()
