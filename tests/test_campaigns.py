"""RCS campaigns end to end: accept, start (now or scheduled), statistics, funds pause and resume,
stop, send rates and priority — against a live server with workers and an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conftest import LiveServer, Receiver, eventually
from rcsgate.cli import app as cli_app
from rcsgate.services import accounts, dispatching, senders, stoplist
from rcsgate.services.demo import ensure_demo
from test_single_send import reserved

TEXT_PRICE = Decimal("0.02")
SMS_PRICE = Decimal("0.025")


def later(srv: LiveServer, seconds: float = 1) -> None:
    """Move the injected clock (for use inside polling lambdas: returns None, not the new time)."""
    srv.clock.advance(seconds)


def campaign_body(phones: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "phones": [{"number": p} for p in phones],
        "sender": "demo_agent",
        "options": {"text": "Sale!"},
        **extra,
    }


class Api:
    def __init__(self, server: LiveServer, key: str) -> None:
        self.server = server
        self.c = httpx.Client(base_url=server.base_url, headers={"X-API-KEY": key}, timeout=30)

    def create(self, body: dict[str, Any], path: str = "/api/campaigns/rcs/send") -> httpx.Response:
        return self.c.post(path, json=body)

    def campaign(self, cid: int) -> dict[str, Any]:
        return dict(self.c.get(f"/api/campaigns/{cid}").json()["data"])

    def detail(self, cid: int) -> dict[str, Any]:
        return dict(self.c.get(f"/api/campaigns/{cid}/detail").json()["data"])

    def messages(self, cid: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.c.get(
                "/api/messages",
                params={"filter[campaign_id]": cid, "page[limit]": 500, "page[offset]": len(out)},
            ).json()
            out += page["data"]
            if len(out) >= page["meta"]["page"]["total"]:
                return out

    def balance(self) -> Decimal:
        return Decimal(str(self.c.get("/api/accounts/balance").json()["data"]["balance"]))

    def wait_campaign(
        self, cid: int, *statuses: str, advance: float = 0.5, timeout: float = 15
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            self.server.clock.advance(advance)
            c = self.campaign(cid)
            return c if c["status"] in statuses else None

        return eventually(check, what=f"campaign {cid} in {statuses}", timeout=timeout)


@pytest.fixture
def env(server_factory: Callable[..., LiveServer], receiver: Receiver) -> tuple[LiveServer, Api, int]:
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    srv.call(lambda db: accounts.set_callback_url(db, account_id=demo.account_id, url=receiver.url))
    return srv, Api(srv, demo.api_key), demo.account_id


def test_campaign_runs_to_done_with_statistics_matching_messages_and_money(env) -> None:  # type: ignore[no-untyped-def]
    srv, api, account_id = env
    srv.call(
        lambda db: stoplist.attach(
            db, srv.clock, account_id=account_id, phones=["380661230004"], list_type="rcs"
        )
    )
    before = api.balance()
    phones = ["380661230001", "380661230002", "380661239990", "48601234567", "380661230004", "380661239993"]
    r = api.create(
        campaign_body(phones, alternative_channel={"sms": {"text": "Fallback", "sender": "DemoSMS"}})
    )
    assert r.status_code == 200, r.text
    c = r.json()["data"]
    assert c["status"] == "creation" and c["message_type"] == "rcs" and c["sender"] == "demo_agent"
    assert c["name"] == f"RCS api campaign / {c['created_at']}"
    assert c["statistics"] == {"delivered": 0, "sent": 0}
    # Four sendable UA recipients (one foreign, one stop-listed) at the text price.
    assert Decimal(str(c["calculated_price"])) == 4 * TEXT_PRICE and c["currency"] == "EUR"
    done = api.wait_campaign(c["id"], "done")
    assert done["real_start_at"] and done["finished_at"]
    # Let the last reports arrive: "delivered" is not final for the two numbers that are also read.
    eventually(
        lambda: (
            later(srv, 1)
            or (
                all(
                    m["status"] in ("read", "delivered", "failed", "undelivered")
                    for m in api.messages(c["id"])
                )
                and len(api.messages(c["id"])) == 7
                and sum(m["status"] == "read" for m in api.messages(c["id"])) == 2
            )
        )
    )
    msgs = api.messages(c["id"])
    rcs = {m["phone"]: m for m in msgs if m["type"] == "rcs"}
    sms = [m for m in msgs if m["type"] == "sms"]
    assert rcs[48601234567]["status"] == "failed" and rcs[380661230004]["status"] == "failed"
    assert rcs[380661239990]["status"] == "undelivered" and len(sms) == 1 and sms[0]["status"] == "delivered"
    assert rcs[380661239993]["status"] == "delivered"
    detail = api.detail(c["id"])
    st = detail["statistics"]
    assert (st["read"], st["delivered"], st["failed"], st["not_rcs_user"], st["undelivered"]) == (
        2,
        1,
        2,
        1,
        0,
    )
    assert detail["alternative_channels"]["sms"]["statistics"]["delivered"] == 1
    assert detail["total_phones"] == 6 and detail["total_messages"] == 7
    charged = 3 * TEXT_PRICE + SMS_PRICE
    assert Decimal(detail["total_price"]) == charged
    assert api.balance() == before - charged
    short = api.campaign(c["id"])
    assert short["statistics"] == {
        "delivered": 3,
        "sent": 1 + 2 + 1,
    }  # delivered only + failed x2 + undelivered
    assert short["alternative_channels"]["sms"]["statistic"] == {"delivered": 1, "sent": 1}


def test_phone_rules_and_limits(env) -> None:  # type: ignore[no-untyped-def]
    _srv, api, _ = env
    r = api.create(campaign_body(["380661230001", "380661230002", "380661230001"]))
    assert r.status_code == 422 and "phones.2.number" in r.json()["errors"]
    many = [f"38066{i:07d}" for i in range(5001)]
    r = api.create(campaign_body(many))
    assert r.status_code == 422 and list(r.json()["errors"]) == ["phones"]
    r = api.create(campaign_body(many[:5000]))
    assert r.status_code == 200, r.text
    cid = r.json()["data"]["id"]
    assert api.detail(cid)["total_phones"] == 5000
    r = api.create(campaign_body(["380661230001"], start_at="2020-01-01 00:00:00"))
    assert r.status_code == 422 and "start_at" in r.json()["errors"]
    r = api.create(campaign_body(["380661230001"], tariff_code=42))
    assert r.status_code == 422 and r.json()["message"] == "Tariff was not found"


def test_reference_ids_already_used_are_refused(env) -> None:  # type: ignore[no-untyped-def]
    _srv, api, _ = env
    body = {
        "phone": {"number": "380661230001", "reference_id": "used1"},
        "sender": "demo_agent",
        "options": {"text": "x"},
    }
    assert api.c.post("/api/messages/rcs/send", json=body).status_code == 200
    r = api.create(
        {
            "phones": [{"number": "380661230002"}, {"number": "380661230003", "reference_id": "used1"}],
            "sender": "demo_agent",
            "options": {"text": "y"},
        }
    )
    assert r.status_code == 422 and "phones.1.reference_id" in r.json()["errors"]


def test_scheduled_campaign_starts_at_start_at_and_not_before(env) -> None:  # type: ignore[no-untyped-def]
    srv, api, _ = env
    r = api.create(campaign_body(["380661230001", "380661230002"], start_at="2026-01-01 13:00:00"))
    assert r.status_code == 200, r.text
    c = r.json()["data"]
    assert c["status"] == "scheduled" and c["start_at"] == "2026-01-01 13:00:00"
    # A campaign due a second earlier: once the scheduler has started it, it has also looked at the
    # first one with the clock at 12:59:59.
    early = api.create(campaign_body(["380661230003"], start_at="2026-01-01 12:59:59")).json()["data"]
    srv.clock.advance(timedelta(minutes=59, seconds=59))
    assert (
        api.wait_campaign(early["id"], "sending", "done", advance=0)["real_start_at"] == "2026-01-01 12:59:59"
    )
    assert api.campaign(c["id"])["status"] == "scheduled"
    assert {m["status"] for m in api.messages(c["id"])} == {"scheduled"}
    srv.clock.advance(1)
    started = api.wait_campaign(c["id"], "sending", "done", advance=0)
    assert started["real_start_at"] == "2026-01-01 13:00:00"
    api.wait_campaign(c["id"], "done")


def test_funds_run_out_pause_topup_by_cli_resume_done(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv, api, account_id = env
    srv.call(
        lambda db: accounts.topup(db, srv.clock, account_id=account_id, amount="-99.9")
    )  # 0.1 left: 5 texts
    r = api.create(campaign_body([f"38066123{i:04d}" for i in range(1, 9)]))
    cid = r.json()["data"]["id"]
    paused = api.wait_campaign(cid, "paused")
    assert paused["status"] == "paused"
    eventually(lambda: later(srv, 1) or sum(m["status"] == "read" for m in api.messages(cid)) == 5)
    waiting = [m for m in api.messages(cid) if m["status"] == "accepted"]
    assert len(waiting) == 3  # waiting, not failed
    assert api.balance() == Decimal("0")
    r = api.c.patch(f"/api/campaigns/{cid}/resume")
    assert r.status_code == 200 and r.json()["data"]["status"] == "sending"
    api.wait_campaign(cid, "paused")  # still no money: paused again, nothing lost
    result = CliRunner().invoke(
        cli_app, ["accounts", "topup", str(account_id), "1"], env={"RCSGATE_DATABASE_URL": srv.db_url}
    )
    assert result.exit_code == 0, result.output
    assert api.c.patch(f"/api/campaigns/{cid}/resume").json()["data"]["status"] == "sending"
    api.wait_campaign(cid, "done")
    eventually(lambda: later(srv, 1) or all(m["status"] == "read" for m in api.messages(cid)))
    assert api.balance() == Decimal("1") - 3 * TEXT_PRICE
    assert reserved(srv) == (0, 0)
    assert Decimal(api.detail(cid)["total_price"]) == 8 * TEXT_PRICE
    r = api.c.patch(f"/api/campaigns/{cid}/resume")
    assert r.status_code == 422 and r.json()["message"] == "Invalid campaign status"


def test_stop_leaves_nothing_sent_afterwards_and_nothing_charged(
    server_factory: Callable[..., LiveServer],
) -> None:
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    agent = srv.call(lambda db: senders.list_agents(db, account_id=demo.account_id))[0]
    srv.call(lambda db: senders.set_send_rate(db, agent_id=agent.id, rate=10))
    api = Api(srv, demo.api_key)
    before = api.balance()
    cid = api.create(campaign_body([f"38066124{i:04d}" for i in range(200)])).json()["data"]["id"]
    api.wait_campaign(cid, "sending", advance=0.2)
    srv.clock.advance(1)
    eventually(lambda: any(m["status"] != "accepted" for m in api.messages(cid)))
    r = api.c.patch(f"/api/campaigns/{cid}/stop")
    assert r.status_code == 200 and r.json()["data"]["status"] == "stopped"
    after_stop = {m["id"]: m["status"] for m in api.messages(cid)}
    assert "sending" not in after_stop.values() and "accepted" not in after_stop.values()
    handed = {i for i, s in after_stop.items() if s != "failed"}
    assert 0 < len(handed) < 200
    eventually(
        lambda: (
            later(srv, 1)
            or all(m["status"] in ("read", "delivered") for m in api.messages(cid) if m["id"] in handed)
        )
    )
    final = api.messages(cid)
    assert {m["id"] for m in final if m["status"] != "failed"} == handed
    assert all(m["amount"]["value"] == "0.0000000" for m in final if m["status"] == "failed")
    assert api.balance() == before - len(handed) * TEXT_PRICE
    assert reserved(srv) == (0, 0)
    assert api.c.patch(f"/api/campaigns/{cid}/stop").json() == {
        "message": "Invalid campaign status",
        "errors": {},
    }


def test_foreign_campaigns_are_404(env) -> None:  # type: ignore[no-untyped-def]
    srv, api, _ = env
    cid = api.create(campaign_body(["380661230001"])).json()["data"]["id"]
    _, other = srv.new_account("other")
    with srv.client(headers={"X-API-KEY": other}) as o:
        for method, path in [
            ("GET", f"/api/campaigns/{cid}"),
            ("GET", f"/api/campaigns/{cid}/detail"),
            ("PATCH", f"/api/campaigns/{cid}/stop"),
            ("PATCH", f"/api/campaigns/{cid}/resume"),
        ]:
            r = o.request(method, path)
            assert r.status_code == 404, (method, path, r.text)
            assert "Sale" not in r.text
        assert o.get("/api/campaigns").json()["meta"]["page"]["total"] == 0


def test_campaign_listing_filters_and_search(env) -> None:  # type: ignore[no-untyped-def]
    srv, api, _ = env
    ids = []
    for i in range(3):
        srv.clock.advance(60)
        ids.append(api.create(campaign_body([f"3806612300{i:02d}"])).json()["data"]["id"])
    get = lambda **p: api.c.get("/api/campaigns", params=p).json()  # noqa: E731
    assert [c["id"] for c in get()["data"]] == ids
    assert [c["id"] for c in get(sort="date", way="desc")["data"]] == ids[::-1]
    assert get(**{"filter[type]": "sms"})["meta"]["page"]["total"] == 0
    assert get(**{"filter[from]": "2026-01-01 12:02:00"})["meta"]["page"]["total"] == 2
    assert get(**{"search[field]": "sender", "search[value]": "demo_"})["meta"]["page"]["total"] == 3
    assert get(**{"search[field]": "taskname", "search[value]": "12:03:00"})["meta"]["page"]["total"] == 1
    assert api.c.get("/api/campaigns", params={"sort": "price"}).status_code == 422


def test_single_sends_go_before_campaign_traffic_and_agent_rates_hold(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()  # no workers: the test drives the dispatcher's claim itself
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    api = Api(srv, demo.api_key)
    cid = api.create(campaign_body([f"38066125{i:04d}" for i in range(30)])).json()["data"]["id"]
    from rcsgate.services import campaigns

    srv.call(lambda db: campaigns.tick(db, srv.clock))
    single = api.c.post(
        "/api/messages/rcs/send",
        json={"phone": {"number": "380661250999"}, "sender": "demo_agent", "options": {"text": "now"}},
    ).json()["data"]["id"]
    first = srv.call(lambda db: dispatching.claim(db, srv.clock, limit=1, lease_seconds=30))
    assert [m.message_id for m in first] == [single]

    agent = srv.call(lambda db: senders.list_agents(db, account_id=demo.account_id))[0]
    srv.call(lambda db: senders.set_send_rate(db, agent_id=agent.id, rate=5))

    async def two_workers(db):  # type: ignore[no-untyped-def]
        a, b = await asyncio.gather(
            dispatching.claim(db, srv.clock, limit=50, lease_seconds=30),
            dispatching.claim(db, srv.clock, limit=50, lease_seconds=30),
        )
        return len(a) + len(b)

    assert srv.call(two_workers) == 5
    assert srv.call(two_workers) == 0  # same instant: the bucket is empty
    srv.clock.advance(0.4)
    assert srv.call(two_workers) == 2
    srv.clock.advance(10)
    assert srv.call(two_workers) == 5  # the bucket holds at most one second's worth
    assert cid
