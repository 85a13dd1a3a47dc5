"""A worker SIGKILLed between its submit to Google and Google's answer: after the restart the message
is submitted again under the same messageId, Google (the local RBM) ignores the duplicate, and the
message ends read with one message at Google and one charge. The killed process's claim is back in
work within 15 s of the kill (recovery_watch.py), at the default claim lease: the restarted server
frees it at once (SQLite), or the new worker once the dead one's liveness beat is 12 s old."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import eventually
from rbm_local import AGENT_ID, CLIENT_TOKEN, RbmThread
from recovery_watch import RecoveryWatch
from test_processes import Proc, cmd, free_port

pytestmark = pytest.mark.slow

PG_ENV = "RCSGATE_TEST_DATABASE_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    base.update(
        RCSGATE_VAR_DIR=str(tmp_path / "var"),
        RCSGATE_PORT=str(free_port()),
        RCSGATE_WEBHOOKS_ALLOW_PRIVATE="true",
        RCSGATE_UPSTREAM_TIMEOUT_SECONDS="3",
        RCSGATE_WEBHOOK_TIMEOUT_SECONDS="3",
        RCSGATE_CLAIM_HOLDER_DEAD_SECONDS="6",  # the timeouts allow 5; the suite waits less than at 13
        RCSGATE_CONNECTORS_REFRESH_SECONDS="0.5",
        RCSGATE_JWT_SECRET="crash-test-secret-" + "x" * 40,
    )
    if request.param == "sqlite":
        base["RCSGATE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'var' / 'rcsgate.db'}"
        yield base
        return
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    pg = request.getfixturevalue("pg_url")
    import asyncio

    from conftest import _truncate_pg

    asyncio.run(_truncate_pg(pg))
    base["RCSGATE_DATABASE_URL"] = pg
    yield base


def _journal(rbm: RbmThread) -> list[dict[str, Any]]:
    return rbm.journal()


# One process each, killed and restarted: the same scenario on both engines.
def test_sigkill_between_submit_and_answer_sends_once_and_charges_once(
    env: dict[str, str], tmp_path: Path, started: list[Proc]
) -> None:
    embedded = env["RCSGATE_DATABASE_URL"].startswith("sqlite")
    with RbmThread() as rbm:
        cmd(env, "db", "upgrade")
        key = json.loads(cmd(env, "demo", "--json").stdout)["api_key"]
        key_file = rbm.key_file(tmp_path)
        cmd(
            env,
            "connectors",
            "add-rbm",
            "rbm1",
            "--agent-id",
            AGENT_ID,
            "--service-account",
            str(key_file),
            "--api-url",
            rbm.url,
            "--webhook-token",
            CLIENT_TOKEN,
        )
        cmd(env, "agents", "set-connector", "1", "rbm1")
        base = f"http://127.0.0.1:{env['RCSGATE_PORT']}"
        rbm.on_loop(lambda r: r.set_webhook(f"{base}/api/upstream/rbm/rbm1"))
        # Google takes the message, then answers only after 30 s: the worker dies before that.
        rbm.on_loop(
            lambda r: setattr(
                r, "faults", r.faults.model_copy(update={"slow_rate": 1.0, "slow_seconds": 30.0})
            )
        )

        def start() -> list[Proc]:
            if embedded:
                procs = [Proc(env, tmp_path / "serve.log", "serve")]
            else:
                procs = [Proc(env, tmp_path / "api.log", "api"), Proc(env, tmp_path / "worker.log", "worker")]
            started.extend(procs)
            procs[0].wait_ready()
            return procs

        procs = start()
        client = httpx.Client(base_url=base, headers={"X-API-KEY": key}, timeout=10)
        r = client.post(
            "/api/messages/rcs/send",
            json={
                "phone": {"number": "380661231231", "reference_id": "crash1"},
                "sender": "demo_agent",
                "options": {"text": "Once only"},
            },
        )
        assert r.status_code == 200, r.text
        mid = r.json()["data"]["id"]
        eventually(
            lambda: _journal(rbm) and _journal(rbm)[0]["submits"] == 1,
            timeout=15,
            what="the submit at Google",
        )
        victim = procs[-1]  # the embedded server, or the worker
        watch = RecoveryWatch(env["RCSGATE_DATABASE_URL"])
        killed_at = time.monotonic()
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        watch.killed(victim.proc.pid, killed_at)
        [entry] = _journal(rbm)
        assert entry["answered"] == 0, "the kill must land before Google's answer"
        # (In scaled mode the API process lives on and may apply Google's events meanwhile: a
        # delivery report can overtake the submit's answer.)
        rbm.on_loop(lambda r: setattr(r, "faults", r.faults.model_copy(update={"slow_rate": 0.0})))
        if embedded:
            procs = start()
            client = httpx.Client(base_url=base, headers={"X-API-KEY": key}, timeout=10)
        else:
            worker = Proc(env, tmp_path / "worker2.log", "worker")
            started.append(worker)

        def final() -> dict[str, Any] | None:
            m = client.get("/api/messages", params={"filter[id]": mid}).json()["data"][0]
            return m if m["status"] == "read" else None

        message = eventually(final, timeout=40, what="the message read after the restart", interval=0.2)
        watch.wait_all(timeout=20)
        watch.check("sqlite, serve" if embedded else "postgresql, api + worker")
        assert message["amount"]["value"] == "0.0200000"
        [entry] = _journal(rbm)
        assert entry["accepted"] and entry["outcome"] == "read"
        assert entry["submits"] <= 2  # the lost answer's submit, and at most one resubmit Google ignored
        stats = rbm.stats()
        assert stats["accepted_messages"] == 1
        balance = client.get("/api/accounts/balance").json()["data"]["balance"]
        assert abs(float(balance) - (100 - 0.02)) < 1e-9
        time.sleep(0.5)
        for proc in procs:
            if proc.proc.poll() is None:
                proc.proc.send_signal(signal.SIGTERM)
                proc.proc.wait(timeout=30)
