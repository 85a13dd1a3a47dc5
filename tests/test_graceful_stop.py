"""A graceful stop (SIGINT, as Ctrl-C of `make run`) in the middle of a campaign, then a restart:
nothing is lost and no webhook is posted twice.

The embedded server (`rcsgate serve`, SQLite, the embedded simulator) dispatches a campaign to a
webhook receiver that answers slowly, so posts are in flight when the signal comes. A graceful stop
lets them finish and records them; the simulator's reports still owed are taken back by the next
process. The receiver must then have seen every webhook exactly once (by `webhook-id`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import eventually, run
from rcsgate.clock import ManualClock
from rcsgate.domain.backoff import parse_schedule
from rcsgate.store.db import Database
from rcsgate.store.tables import webhook_deliveries
from rcsgate.webhooks.sender import STOPPED_ERROR, WebhookSender
from test_crash_recovery import _rows
from test_pipeline_batches import NOW, _account, _message_with_pending_webhooks
from test_processes import Proc, cmd, free_port
from test_simulator_service import EXPECTED

# The simulator's outcomes that end without waiting for a validity to run out: suffix → (RCS end
# state, SMS fallback end state or None).
OUTCOMES = EXPECTED
RECIPIENTS = 300
# The receiver holds each answer this long: with the sender's 32 connections to one receiver, about
# 160 posts a second, so the campaign's ~1000 webhooks are still going when the signal comes and
# the sender holds hundreds of claimed deliveries ...
RECEIVER_DELAY = 0.2
# ... and this long from then on: posting all those claimed would take far longer than the
# runner's grace for a stop (10 s), so a stop must hand back those not on the wire yet.
STOPPING_DELAY = 1.5


class SlowReceiver:
    """Records every POST (headers and body) as soon as it is read, answers 200 after a delay: a post
    whose answer is lost has still been received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.delay = RECEIVER_DELAY
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.received.append((self.headers.get("webhook-id", ""), body))
                time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def ids(self) -> list[str]:
        with self._lock:
            return [webhook_id for webhook_id, _ in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    base.update(
        RCSGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'rcsgate.db'}",
        RCSGATE_VAR_DIR=str(tmp_path / "var"),
        RCSGATE_PORT=str(free_port()),
        RCSGATE_WEBHOOKS_ALLOW_PRIVATE="true",
        # Short claims, so that a webhook claimed before the stop and left unrecorded is posted
        # again within the test (webhook claims last twice this); yet long enough that the sender
        # does not hand back claims about to run out (lease - timeout - 1 s) before the runner's
        # grace ends, as it would do with the default lease.
        RCSGATE_CLAIM_LEASE_SECONDS="8",
        RCSGATE_WEBHOOK_TIMEOUT_SECONDS="2.5",
        RCSGATE_UPSTREAM_TIMEOUT_SECONDS="2",
        RCSGATE_WEBHOOK_RETRY_SCHEDULE="1s,1s,2s,4s",
        RCSGATE_SIMULATOR_READ_LATENCY="1.5",
    )
    return base


@pytest.fixture
def slow_receiver() -> Iterator[SlowReceiver]:
    r = SlowReceiver()
    yield r
    r.close()


def _phones() -> dict[str, str]:
    suffixes = list(OUTCOMES)
    return {
        f"38066{n:03d}{suffixes[n % len(suffixes)]}": suffixes[n % len(suffixes)] for n in range(RECIPIENTS)
    }


def _count(url: str, sql: str) -> int:
    return int(next(iter(_rows(url, sql)[0].values())))


def _unsettled(url: str, phones: dict[str, str]) -> int:
    """How many messages are not (yet) in the end state their suffix gives, SMS fallbacks included,
    plus how many webhooks are not delivered yet."""
    pending = _count(url, "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'")
    messages = _rows(url, "SELECT id, type, phone, status, parent_id FROM messages")
    rcs = {m["id"]: m for m in messages if m["type"] == "rcs"}
    sms = {m["parent_id"]: m for m in messages if m["type"] == "sms"}
    wrong = len(phones) - len(rcs)
    for mid, m in rcs.items():
        want_rcs, want_sms = OUTCOMES[phones[str(m["phone"])]]
        wrong += m["status"] != want_rcs
        wrong += want_sms is not None and sms.get(mid, {}).get("status") != want_sms
    return pending + wrong


@pytest.mark.parametrize(
    ("answer_after", "cut"), [(0.3, False), (30.0, True)], ids=["answered", "receiver-hangs"]
)
def test_a_stop_posts_nothing_more_and_records_the_posts_on_the_wire(
    db_url: str, tmp_path: Path, slow_receiver: SlowReceiver, answer_after: float, cut: bool
) -> None:
    """In process: two messages' chains on the wire (two slots to the receiver), the rest claimed
    and waiting. The stop hands the waiting ones back untried at once; the two on the wire are
    recorded as delivered when answered in time, else cut after ``stop_seconds`` and recorded as
    an attempt whose answer never came, due again at once."""
    slow_receiver.delay = answer_after

    async def scenario(db: Database) -> None:
        account_id = await _account(db, tmp_path)
        async with db.write() as conn:
            chains = [
                await _message_with_pending_webhooks(conn, account_id, slow_receiver.url, 3) for _ in range(4)
            ]
        sender = WebhookSender(
            db=db,
            clock=ManualClock(NOW),
            schedule=parse_schedule("60"),
            allow_private=True,
            poll_seconds=0.01,
            per_receiver=2,
            timeout_seconds=60,
            stop_seconds=1.0,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        for _ in range(500):
            if len(slow_receiver.ids()) == 2:
                break
            await asyncio.sleep(0.01)
        stop.set()
        stopping = time.monotonic()
        await asyncio.wait_for(task, timeout=10)
        took = time.monotonic() - stopping
        assert took < (sender.stop_seconds if cut else answer_after) + 1.0, took

        async with db.read() as conn:
            rows = list(await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id)))
        on_wire = {webhook_id for webhook_id, _ in slow_receiver.received}
        assert len(on_wire) == 2 and len(slow_receiver.ids()) == 2, "posted after the stop"
        for r in rows:
            assert r.message_id in chains and r.status in ("pending", "delivered")
            if r.webhook_id not in on_wire:  # handed back: due at once, the claim not counted
                assert (r.status, r.attempts, r.next_attempt_at) == ("pending", 0, NOW), r
            elif cut:  # an attempt that got no answer: due again at once, not given up
                assert (r.status, r.attempts, r.last_error) == ("pending", 1, STOPPED_ERROR), r
                assert r.next_attempt_at == NOW
            else:
                assert (r.status, r.attempts, r.last_status_code) == ("delivered", 1, 200), r

    run(scenario, db_url)


@pytest.mark.slow
def test_sigint_mid_campaign_then_restart_loses_nothing_and_posts_no_webhook_twice(
    env: dict[str, str], tmp_path: Path, started: list[Proc], slow_receiver: SlowReceiver
) -> None:
    url = env["RCSGATE_DATABASE_URL"]
    cmd(env, "db", "upgrade")
    demo = json.loads(cmd(env, "demo", "--json").stdout)
    cmd(env, "accounts", "set-callback-url", str(demo["account_id"]), slow_receiver.url)
    phones = _phones()
    log = tmp_path / "serve.log"
    server = Proc(env, log, "serve")
    started.append(server)
    server.wait_ready()
    with httpx.Client(base_url=server.base, headers={"X-API-KEY": demo["api_key"]}, timeout=30) as api:
        r = api.post(
            "/api/campaigns/rcs/send",
            json={
                "phones": [{"number": p} for p in phones],
                "sender": "demo_agent",
                "options": {"text": "Sale"},
                "alternative_channel": {"sms": {"sender": "DemoSMS", "text": "Sale"}},
            },
        )
        assert r.status_code == 200, r.text
        campaign = r.json()["data"]["id"]

    # Mid-campaign: webhooks are being posted, messages still wait for their reports.
    eventually(lambda: len(slow_receiver.ids()) >= 100, what="webhooks under way", timeout=20, interval=0.01)
    owed = _unsettled(url, phones)
    claimed = _count(url, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND attempts > 0")
    slow_receiver.delay = STOPPING_DELAY
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    code = server.proc.wait(timeout=30)
    stopped_after = time.monotonic() - signalled
    server.handle.close()
    slow_receiver.delay = 0.0
    assert code in (0, -signal.SIGINT), log.read_text()
    assert "workers_stopped" in log.read_text()
    assert owed > 0 and claimed > 0, (owed, claimed)
    assert len(slow_receiver.ids()) < _count(url, "SELECT count(*) FROM webhook_deliveries")
    # As long as the posts on the wire took (the receiver's answer), plus a little; not the time
    # to post everything claimed, nor the runner's grace (which would cut posts the receiver has).
    assert stopped_after < STOPPING_DELAY + 5, stopped_after

    server = Proc(env, log, "serve")
    started.append(server)
    server.wait_ready()
    eventually(
        lambda: _unsettled(url, phones) == 0,
        what="every message and webhook settled",
        timeout=30,
        interval=0.5,
    )
    with httpx.Client(base_url=server.base, headers={"X-API-KEY": demo["api_key"]}, timeout=30) as api:
        assert api.get(f"/api/campaigns/{campaign}").json()["data"]["status"] == "done"
    server.stop()

    ids = slow_receiver.ids()
    twice = {w: n for w, n in Counter(ids).items() if n > 1}
    assert not twice, f"{len(twice)} webhooks posted more than once, e.g. {list(twice.items())[:3]}"
    assert set(ids) == {r["webhook_id"] for r in _rows(url, "SELECT webhook_id FROM webhook_deliveries")}
