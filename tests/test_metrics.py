"""Prometheus metrics: GET /metrics of a real server over HTTP, counting the single send through the fast
lane and the pipeline after it; message counts taken only from committed transactions; the scrape
token; and `rcsgate api --workers 2` + `rcsgate worker` as real processes on PostgreSQL, whose
numbers add up whichever API process answers."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import rcsgate
from conftest import LiveServer, Receiver, _truncate_pg, eventually, run
from rcsgate.clock import ManualClock, SystemClock
from rcsgate.services.accounts import set_callback_url
from rcsgate.services.demo import ensure_demo
from rcsgate.services.lifecycle import Moves, unit_of_work
from rcsgate.store import messages as store
from rcsgate.store import pipeline
from rcsgate.store.db import Database
from test_processes import Proc, free_port
from test_single_send import Api, request_body

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Every label any rcsgate_ metric may carry: none names an account, campaign, phone or message.
ALLOWED_LABELS = {
    "channel",
    "source",
    "connector",
    "status",
    "reason",
    "endpoint",
    "outcome",
    "operation",
    "status_class",
    "version",
    "python",
    "le",
}
TOKEN = "metrics-token-" + "x" * 20


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def scrape(base_url: str, path: str = "/metrics", **headers: str) -> Samples:
    r = httpx.get(base_url + path, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` that has ``labels`` (and any others)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def families(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def check_labels(samples: Samples) -> None:
    for name, labels in samples:
        if name.startswith("rcsgate_"):
            assert {k for k, _ in labels} <= ALLOWED_LABELS, (name, labels)


@pytest.fixture
def setup(server_factory: Callable[..., LiveServer], receiver: Receiver) -> tuple[LiveServer, Api, Receiver]:
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    srv.call(lambda db: set_callback_url(db, account_id=demo.account_id, url=receiver.url))
    return srv, Api(srv, demo.api_key), receiver


def test_a_send_and_its_way_through_the_pipeline_are_counted(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver = setup
    before = scrape(srv.base_url)
    delivered = api.send(request_body("380661231231")).json()["data"]["id"]  # sent, delivered, read
    fallback = api.send(request_body("380661239990")).json()["data"]["id"]  # not an RCS user: SMS
    wrong_country = api.send(request_body("48601234567"))  # stored failed at once
    assert wrong_country.status_code == 200 and wrong_country.json()["data"]["status"] == "failed"
    assert api.send({"phone": {"number": "x"}}).status_code == 422  # refused, nothing stored
    # Each submit's answer recorded before the clock moves: a simulator report that overtook it
    # would name no connector.
    api.wait_status(delivered, "sent")
    api.wait_status(fallback, "undelivered")
    sms = eventually(lambda: api.message(fallback)["alternative_channels"]["sms"]["id"])[0]
    api.wait_status(sms, "sent")
    api.wait_status(delivered, "read", advance=0.5)
    api.wait_status(sms, "delivered", advance=0.5)
    # sent, delivered, read; undelivered; the SMS's sent and delivered
    eventually(lambda: len(receiver.received) >= 6, what="six webhooks")

    def counted() -> Samples | None:
        after = scrape(srv.base_url)
        done = total(after, "rcsgate_webhook_deliveries_total", outcome="delivered") - total(
            before, "rcsgate_webhook_deliveries_total", outcome="delivered"
        )
        return after if done >= 6 else None

    after = eventually(counted, what="webhook attempts counted")
    check_labels(after)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("rcsgate_messages_accepted_total", channel="rcs", source="api") == 3
    sim = "simulator"
    assert delta("rcsgate_message_transitions_total", channel="rcs", connector=sim, status="sent") == 1
    assert delta("rcsgate_message_transitions_total", channel="rcs", connector=sim, status="delivered") == 1
    assert delta("rcsgate_message_transitions_total", channel="rcs", connector=sim, status="read") == 1
    assert delta("rcsgate_message_transitions_total", channel="rcs", connector=sim, status="undelivered") == 1
    assert delta("rcsgate_message_transitions_total", channel="rcs", connector="none", status="failed") == 1
    assert delta("rcsgate_message_transitions_total", channel="sms", connector=sim, status="delivered") == 1
    assert delta("rcsgate_sms_fallbacks_total", reason="not_rcs_user") == 1
    # The fast lane's requests: three answered 200, one refused.
    accepted = {"endpoint": "single", "outcome": "accepted"}
    assert delta("rcsgate_accept_duration_seconds_count", **accepted) == 3
    assert delta("rcsgate_accept_duration_seconds_count", endpoint="single", outcome="refused") == 1
    assert delta("rcsgate_accept_duration_seconds_bucket", **accepted, le="+Inf") == 3
    submits = {"connector": sim, "operation": "submit"}
    assert delta("rcsgate_upstream_request_duration_seconds_count", **submits, outcome="accepted") == 2
    assert delta("rcsgate_upstream_request_duration_seconds_count", **submits, outcome="not_capable") == 1
    assert delta("rcsgate_delivery_latency_seconds_count", channel="rcs", connector=sim) == 1
    assert delta("rcsgate_delivery_latency_seconds_count", channel="sms", connector=sim) == 1
    # On the injected clock the RCS message was delivered within a few advances of 0.5 s.
    rcs_seconds = delta("rcsgate_delivery_latency_seconds_sum", channel="rcs", connector=sim)
    assert 0 < rcs_seconds < 60
    # Read from the database at scrape time (this process leads the sweeper): nothing waits now.
    assert {
        "rcsgate_queue_messages",
        "rcsgate_queue_oldest_age_seconds",
        "rcsgate_webhook_outbox_pending",
        "rcsgate_webhook_outbox_oldest_age_seconds",
        "rcsgate_upstream_events_unapplied",
        "rcsgate_build_info",
    } <= families(after)
    assert value(after, "rcsgate_queue_messages", status="accepted") == 0
    # Every series the Grafana dashboard queries is one this process exports.
    dashboard = json.loads((Path(__file__).parents[1] / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queried = {name for e in exprs for name in re.findall(r"\brcsgate_\w+", e)}
    assert queried and queried <= families(after) | {"rcsgate_circuit_open"}, queried - families(after)
    assert value(after, "rcsgate_queue_messages", status="sending") == 0
    assert value(after, "rcsgate_queue_oldest_age_seconds") == 0


def test_queue_gauges_show_what_waits_and_for_how_long(server_factory: Callable[..., LiveServer]) -> None:
    clock = ManualClock()
    # No background workers: what is accepted stays accepted. The gauges then come from no process
    # (none leads the sweeper), so read them through an exporter that leads.
    srv = server_factory(clock=clock)
    demo = srv.call(lambda db: ensure_demo(db, clock, var_dir=srv.settings.var_dir))
    api = Api(srv, demo.api_key)
    assert api.send(request_body("380661231231")).status_code == 200
    assert api.send(request_body("380661231232")).status_code == 200
    samples = scrape(srv.base_url)
    assert "rcsgate_queue_messages" not in families(samples)
    assert "rcsgate_build_info" in families(samples)
    clock.advance(42)

    async def read(db: Database) -> Samples:
        from rcsgate.metrics.exposition import Exporter

        return parse((await Exporter(db=db, clock=clock, leading=lambda: True).render()).decode())

    gauges = srv.call(read)
    assert value(gauges, "rcsgate_queue_messages", status="accepted") == 2
    assert value(gauges, "rcsgate_queue_oldest_age_seconds") == 42
    assert value(gauges, "rcsgate_webhook_outbox_pending") == 0


def test_scrape_token_and_switch(server_factory: Callable[..., LiveServer]) -> None:
    srv = server_factory(metrics_token=TOKEN)
    r = httpx.get(srv.base_url + "/metrics")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(srv.base_url + "/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert "rcsgate_build_info" in families(scrape(srv.base_url, Authorization=f"Bearer {TOKEN}"))
    assert "/metrics" not in httpx.get(srv.base_url + "/openapi.json").json()["paths"]
    off = server_factory(metrics_enabled=False)
    assert httpx.get(off.base_url + "/metrics").status_code == 404


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_transitions_count_only_once_committed(db_url: str, tmp_path: Path) -> None:
    from rcsgate.metrics.instruments import message_transitions

    def sent() -> float:
        return message_transitions.labels("rcs", "metrics-test", "sent")._value.get()  # type: ignore[no-any-return]

    async def scenario(db: Database) -> None:
        account_id = (await ensure_demo(db, ManualClock(NOW), var_dir=tmp_path)).account_id
        async with db.write() as conn:
            mid = await store.insert_message(
                conn,
                account_id=account_id,
                type="rcs",
                phone="380661230001",
                sender="demo_agent",
                kind="text",
                content='{"text": "hi"}',
                status="sending",
                validity_seconds=3600,
                expires_at=NOW + timedelta(hours=1),
                created_at=NOW,
            )

        async def move() -> None:
            async with unit_of_work(conn) as unit:
                row = (await pipeline.states(conn, [mid], for_update=False))[mid]
                moves = Moves(unit)
                await moves.move(row, "sent", NOW, sent_at=NOW, upstream="metrics-test")
                assert await moves.write() == {mid}

        start = sent()
        with pytest.raises(RuntimeError, match="rolled back"):
            async with db.write() as conn:
                await move()
                raise RuntimeError("rolled back")
        assert sent() == start
        async with db.write() as conn:
            await move()
            assert sent() == start  # written, not yet committed
        assert sent() == start + 1

    run(scenario, db_url)


# ------------------------------------------------------------------ real processes, PostgreSQL


@pytest.mark.slow
def test_api_workers_and_a_worker_add_up_on_postgresql(
    pg_url: str, tmp_path: Path, started: list[Proc]
) -> None:
    # (pg_url skips this test, saying why, without RCSGATE_TEST_DATABASE_URL.)
    asyncio.run(_truncate_pg(pg_url))
    metrics_dir = tmp_path / "metrics"
    worker_port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RCSGATE_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        RCSGATE_DATABASE_URL=pg_url,
        RCSGATE_VAR_DIR=str(tmp_path / "var"),
        RCSGATE_PORT=str(free_port()),
        RCSGATE_JWT_SECRET="s" * 40,
        RCSGATE_SIMULATOR_ZERO_LATENCY="true",
        RCSGATE_WORKER_POLL_SECONDS="0.05",
        RCSGATE_METRICS_DIR=str(metrics_dir),
        RCSGATE_METRICS_PORT=str(worker_port),
        RCSGATE_METRICS_TOKEN=TOKEN,
    )
    # The schema is at head already (pg_url); the demo account made here, not by a CLI process.
    key = run(lambda db: ensure_demo(db, SystemClock(), var_dir=tmp_path / "var"), pg_url).api_key
    api = Proc(env, tmp_path / "api.log", "api", "--workers", "2")
    worker = Proc(env, tmp_path / "worker.log", "worker")
    started += [api, worker]
    api.wait_ready()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    worker_url = f"http://127.0.0.1:{worker_port}"

    def pids() -> set[str]:
        return {m.group(1) for f in metrics_dir.iterdir() if (m := re.fullmatch(r"\w+_(\d+)\.db", f.name))}

    sends = 0
    with httpx.Client(base_url=api.base, headers={"X-API-KEY": key}, timeout=10) as c:
        # Until both API processes have accepted some (a new connection each: they share the
        # listening socket, and either may take it).
        while sends < 10 or (len(pids()) < 2 and sends < 100):
            r = httpx.post(
                api.base + "/api/messages/rcs/send",
                json=request_body(f"3806612{sends:05d}", sms=False),
                headers={"X-API-KEY": key},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            sends += 1
        assert len(pids()) == 2

        def all_read() -> bool:
            rows = c.get("/api/messages", params={"page[limit]": 100}).json()["data"]
            return len(rows) == sends and all(m["status"] == "read" for m in rows)

        eventually(all_read, what="every message read", timeout=20, interval=0.2)

    # Every scrape adds up both API processes' files, whichever process answers it.
    assert httpx.get(api.base + "/metrics").status_code == 401
    for _ in range(6):
        samples = scrape(api.base, **auth)
        check_labels(samples)
        assert value(samples, "rcsgate_messages_accepted_total", channel="rcs", source="api") == sends
        assert (
            value(samples, "rcsgate_accept_duration_seconds_count", endpoint="single", outcome="accepted")
            == sends
        )
        assert "rcsgate_queue_messages" not in families(samples)  # API processes never export them
        info = {"version": rcsgate.__version__, "python": platform.python_version()}
        assert value(samples, "rcsgate_build_info", **info) == 1

    def worker_counted() -> Samples | None:
        samples = scrape(worker_url, **auth)
        # Any connector label: a report of the embedded simulator that overtakes its submit's answer
        # names no connector, and the message then records none.
        read = total(samples, "rcsgate_message_transitions_total", channel="rcs", status="read")
        return samples if read == sends and "rcsgate_queue_messages" in families(samples) else None

    samples = eventually(worker_counted, what="the worker's counts and gauges", timeout=10, interval=0.2)
    check_labels(samples)
    assert total(samples, "rcsgate_delivery_latency_seconds_count", channel="rcs") == sends
    assert (
        value(
            samples,
            "rcsgate_upstream_request_duration_seconds_count",
            connector="simulator",
            operation="submit",
            outcome="accepted",
        )
        == sends
    )
    assert value(samples, "rcsgate_queue_messages", status="accepted") == 0
    assert "process_cpu_seconds_total" in families(samples)  # one process: its own collectors too
    assert httpx.get(worker_url + "/metrics").status_code == 401

    worker.stop()
    api.stop()
    # The API's files are gone with it.
    assert not [f for f in metrics_dir.iterdir() if f.suffix == ".db"]
