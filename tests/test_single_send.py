"""POST /api/messages/rcs/send end to end: every simulator outcome, fallback, billing, webhooks,
status queries — with the injected clock moved instead of sleeping."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conftest import LiveServer, Receiver, eventually
from rcsgate.services import accounts, stoplist
from rcsgate.services.demo import ensure_demo
from rcsgate.store.db import Database
from rcsgate.store.tables import accounts as accounts_table
from rcsgate.store.tables import message_events, messages, webhook_deliveries
from rcsgate.webhooks.signing import verify

CAROUSEL = {
    "cards": [
        {
            "text": "This is the first card text",
            "media": {"url": "https://domain.com/image.png"},
            "suggestions": [
                {"text": "Go to site", "url": "https://domain.com/", "postback_data": "site"},
                {"text": "Call us", "phone": "380971112233"},
            ],
        },
        {
            "text": "This is the second card text",
            "media": {"url": "https://domain.com/image2.png"},
            "suggestions": [{"text": "Go to site", "url": "https://domain.com/"}],
        },
    ]
}
PRICE = {"carousel": Decimal("0.05"), "text": Decimal("0.02"), "sms": Decimal("0.025")}


def request_body(
    phone: str, reference: str | None = None, *, sms: bool = True, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "phone": {"number": phone, **({"reference_id": reference} if reference else {})},
        "sender": "demo_agent",
        "options": copy.deepcopy(CAROUSEL),
    }
    if sms:
        body["alternative_channel"] = {"sms": {"text": "Hello from SMS", "sender": "DemoSMS", "validity": 72}}
    body.update(extra)
    return body


class Api:
    def __init__(self, server: LiveServer, key: str) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.base_url, headers={"X-API-KEY": key}, timeout=10)

    def send(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.client.post("/api/messages/rcs/send", json=body, headers=headers)

    def message(self, message_id: int) -> dict[str, Any]:
        r = self.client.get("/api/messages", params={"filter[id]": message_id})
        assert r.status_code == 200, r.text
        return dict(r.json()["data"][0])

    def messages(self, **params: Any) -> list[dict[str, Any]]:
        r = self.client.get("/api/messages", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def balance(self) -> Decimal:
        return Decimal(str(self.client.get("/api/accounts/balance").json()["data"]["balance"]))

    def wait_status(self, message_id: int, *statuses: str, advance: float = 0.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if advance:
                self.server.clock.advance(advance)
            m = self.message(message_id)
            return m if m["status"] in statuses else None

        return eventually(check, what=f"message {message_id} in {statuses}")


@pytest.fixture
def setup(server_factory: Callable[..., LiveServer], receiver: Receiver) -> tuple[LiveServer, Api, Receiver]:
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    srv.call(lambda db: accounts.set_callback_url(db, account_id=demo.account_id, url=receiver.url))
    return srv, Api(srv, demo.api_key), receiver


def reserved(srv: LiveServer) -> tuple[int, int]:
    """Funds held reserved: by the accounts, and by their messages (units of 10^-7). Both are 0 once
    every message has ended: a charge or a release closes each reservation."""

    async def read(db: Database) -> tuple[int, int]:
        async with db.read() as conn:
            held = await conn.execute(select(func.coalesce(func.sum(accounts_table.c.reserved), 0)))
            by_messages = await conn.execute(select(func.coalesce(func.sum(messages.c.reserved), 0)))
            return int(held.scalar_one()), int(by_messages.scalar_one())

    return srv.call(read)


def events_of(srv: LiveServer, message_id: int) -> list[Any]:
    """The message's history (from_status, status, detail, at on the injected clock), in order."""

    async def read(db: Database) -> list[Any]:
        async with db.read() as conn:
            query = select(message_events).where(message_events.c.message_id == message_id)
            return list(await conn.execute(query.order_by(message_events.c.id)))

    return srv.call(read)


def statuses_for(receiver: Receiver, message_id: int) -> list[str]:
    return [b["status"] for b in receiver.bodies() if b.get("id") == message_id and "status" in b]


def delivered_once(receiver: Receiver, message_id: int) -> list[str]:
    """The message's statuses in arrival order, each webhook counted once (by `webhook-id`): delivery is
    at least once, and a receiver de-duplicates."""
    seen: set[str] = set()
    statuses = []
    for r in list(receiver.received):
        body = r.json()
        if body.get("id") == message_id and "status" in body and r.headers["webhook-id"] not in seen:
            seen.add(r.headers["webhook-id"])
            statuses.append(body["status"])
    return statuses


def test_delivered_and_read_billed_once_with_webhooks(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver = setup
    before = api.balance()
    r = api.send(request_body("380661231231", "ref1"))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["status"] == "accepted" and data["type"] == "rcs" and data["phone"] == 380661231231
    assert data["amount"] == {"value": "0.0500000", "currency": "EUR"}
    assert data["validity"] == 72 and data["source"] == "rest" and data["sender"] == "demo_agent"
    mid = data["id"]
    api.wait_status(mid, "sent")
    api.wait_status(mid, "read", advance=0.5)
    eventually(lambda: statuses_for(receiver, mid) == ["sent", "delivered", "read"], what="three webhooks")
    assert api.balance() == before - PRICE["carousel"]
    assert reserved(srv) == (0, 0)
    m = api.message(mid)
    assert m["amount"]["value"] == "0.0500000"
    assert m["sent_at"] and m["delivered_at"]
    assert m["alternative_channels"] == {"sms": {"parts": 1, "id": []}}
    # More time and more reports change nothing.
    srv.clock.advance(3600)
    assert api.message(mid)["status"] == "read"
    assert api.balance() == before - PRICE["carousel"]
    delivered = next(b for b in receiver.bodies() if b.get("status") == "delivered")
    assert delivered == {
        "error": 0,
        "errorDescription": "No errors",
        "id": mid,
        "msisdn": "380661231231",
        "reference": "ref1",
        "time_in": "2026-01-01 12:00:00",
        "time_sent": delivered["time_sent"],
        "time_dr": delivered["time_dr"],
        "status": "delivered",
        "price": "0.0500000",
        "currency": "EUR",
    }


@pytest.mark.parametrize("suffix", ["9990", "9991", "9992"])
def test_fallback_to_sms_billed_at_sms_price(setup, suffix: str) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver = setup
    before = api.balance()
    body = request_body(f"38066123{suffix}", f"fb{suffix}", validity_seconds=60)
    mid = api.send(body).json()["data"]["id"]
    rcs = api.wait_status(mid, "undelivered", "expired", advance=1.0 if suffix != "9992" else 5.0)
    assert rcs["status"] == ("expired" if suffix == "9992" else "undelivered")
    assert rcs["amount"]["value"] == "0.0000000"
    sms_ids = eventually(lambda: api.message(mid)["alternative_channels"]["sms"]["id"], what="fallback id")
    sms = api.wait_status(sms_ids[0], "delivered", advance=0.5)
    assert sms["type"] == "sms" and sms["sender"] == "DemoSMS" and sms["text"] == "Hello from SMS"
    assert sms["parts"] == 1 and sms["reference_id"] == f"fb{suffix}"
    assert sms["amount"]["value"] == "0.0250000"
    assert api.balance() == before - PRICE["sms"]
    assert reserved(srv) == (0, 0)  # the RCS price handed on to the SMS, then charged at its price
    both = api.messages(**{"filter[reference_id]": f"fb{suffix}"})
    assert [(m["id"], m["type"]) for m in both] == [(mid, "rcs"), (sms_ids[0], "sms")]
    eventually(lambda: "delivered" in statuses_for(receiver, sms_ids[0]), what="sms webhook")


def test_delivered_never_read(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver = setup
    mid = api.send(request_body("380661239993", sms=False)).json()["data"]["id"]
    api.wait_status(mid, "delivered", advance=0.5)
    srv.clock.advance(600)
    # A message to a number that reads, sent now: the upstream hands its reports over in due order,
    # so once its "read" is in, a "read" of the first (due ten minutes earlier) would be too.
    control = api.send(request_body("380661231231", sms=False)).json()["data"]["id"]
    api.wait_status(control, "read", advance=0.5)
    assert api.message(mid)["status"] == "delivered"
    assert [e.status for e in events_of(srv, mid)] == ["accepted", "sending", "sent", "delivered"]
    eventually(
        lambda: statuses_for(receiver, control) == ["sent", "delivered", "read"], what="control webhooks"
    )
    assert statuses_for(receiver, mid) == ["sent", "delivered"]


def test_click_webhook(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver = setup
    mid = api.send(request_body("380661239994", "clicky")).json()["data"]["id"]
    api.wait_status(mid, "read", advance=0.5)
    click = eventually(
        lambda: [b for b in receiver.bodies() if "postback" in b] or (srv.clock.advance(0.5) and None),
        what="click webhook",
    )[0]
    assert click["id"] == mid and click["reference"] == "clicky" and click["msisdn"] == "380661239994"
    assert click["text"] == "Go to site" and click["postback"] == "site"
    assert click["time_click"]


def test_rejected_by_upstream_is_failed_without_fallback_or_charge(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver = setup
    before = api.balance()
    mid = api.send(request_body("380661239995")).json()["data"]["id"]
    m = api.wait_status(mid, "failed")
    assert m["alternative_channels"]["sms"]["id"] == []
    assert api.balance() == before
    assert reserved(srv) == (0, 0)
    eventually(lambda: statuses_for(receiver, mid) == ["failed"], what="failed webhook")


def test_sms_undelivered_too_means_no_charge(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, _ = setup
    before = api.balance()
    mid = api.send(request_body("380661239996")).json()["data"]["id"]
    api.wait_status(mid, "undelivered")
    sms_id = eventually(lambda: api.message(mid)["alternative_channels"]["sms"]["id"])[0]
    api.wait_status(sms_id, "undelivered", advance=0.5)
    assert api.balance() == before
    assert reserved(srv) == (0, 0)
    assert api.message(sms_id)["amount"]["value"] == "0.0000000"


def test_unreachable_upstream_is_retried_with_backoff(server_factory) -> None:  # type: ignore[no-untyped-def]
    # Workers that look for due messages every 20 ms even when idle: a retry is then taken within a
    # step or two of the injected clock after it is due.
    srv = server_factory(run_workers=True, worker_idle_poll_seconds=0.02)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    api = Api(srv, demo.api_key)
    mid = api.send(request_body("380661239997", sms=False)).json()["data"]["id"]
    # Three transient failures, each retried later on the injected clock, then delivered. The clock
    # moves in small steps, so that each retry's time shows its delay.
    api.wait_status(mid, "delivered", "read", advance=0.1)
    history = events_of(srv, mid)
    submits = [e.at for e in history if (e.from_status, e.status) == ("accepted", "sending")]
    retries = [e for e in history if (e.from_status, e.status) == ("sending", "accepted")]
    assert len(submits) == 4, history
    assert [e.detail for e in retries] == ["retry: upstream unreachable"] * 3, history
    # Each retry waits for its delay (domain/backoff.exponential_delay: 1 s, 2 s, 4 s, each ±20%), and
    # is taken when due; the clock moves 0.1 s at a time.
    for n, (failed, again) in enumerate(zip(retries, submits[1:], strict=True)):
        waited = (again - failed.at).total_seconds()
        assert 0.8 * 2**n <= waited <= 1.2 * 2**n + 0.5, (n, waited, history)


def test_country_mismatch_and_stop_list_are_failed_and_never_billed(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver = setup
    before = api.balance()
    foreign = api.send(request_body("48601234567", "pl")).json()["data"]  # Poland, agent is UA
    assert foreign["status"] == "failed" and foreign["amount"]["value"] == "0.0000000"
    srv.call(
        lambda db: stoplist.attach(db, srv.clock, account_id=1, phones=["380661230001"], list_type="rcs")
    )
    stopped = api.send(request_body("380661230001", "stop")).json()["data"]
    assert stopped["status"] == "failed"
    ignored = api.send(request_body("380661230001", "nostop", check_stop_list=False)).json()["data"]
    assert ignored["status"] == "accepted"
    api.wait_status(ignored["id"], "read", advance=0.5)
    assert api.balance() == before - PRICE["carousel"]
    assert reserved(srv) == (0, 0)
    assert statuses_for(receiver, foreign["id"]) == [] and statuses_for(receiver, stopped["id"]) == []


def test_sms_stop_list_blocks_only_the_fallback(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, _ = setup
    srv.call(
        lambda db: stoplist.attach(db, srv.clock, account_id=1, phones=["380661239990"], list_type="sms")
    )
    before = api.balance()
    mid = api.send(request_body("380661239990")).json()["data"]["id"]
    api.wait_status(mid, "undelivered")
    sms_id = eventually(lambda: api.message(mid)["alternative_channels"]["sms"]["id"])[0]
    assert api.message(sms_id)["status"] == "failed"
    assert api.balance() == before
    assert reserved(srv) == (0, 0)


def test_insufficient_funds_stores_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, _ = setup
    srv.call(lambda db: accounts.topup(db, srv.clock, account_id=1, amount="-99.96"))
    # 0.04 left: a carousel (0.05) cannot be covered; a text (0.02) can, but not with the SMS (0.025).
    r = api.send(request_body("380661231231"))
    assert r.status_code == 422 and r.json() == {"message": "Insufficient funds", "errors": {}}
    r = api.send(request_body("380661231232", options={"text": "hi"}))
    assert r.status_code == 422
    r = api.send(request_body("380661231233", options={"text": "hi"}, sms=False))
    assert r.status_code == 200
    assert [m["phone"] for m in api.messages()] == [380661231233]


def test_validation_errors_name_fields_and_store_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    _srv, api, _ = setup
    cases: list[tuple[dict[str, Any], str]] = [
        ({**request_body("38066123"), "phone": {"number": "12345678"}}, "phone.number"),
        ({**request_body("380661231231"), "sender": "x" * 41}, "sender"),
        ({**request_body("380661231231"), "options": {"text": "x" * 161}}, "options.text"),
        ({**request_body("380661231231"), "validity_seconds": 29}, "validity_seconds"),
        ({**request_body("380661231231"), "validity": 73}, "validity"),
        ({**request_body("380661231231"), "callback_url": "https://x.io/" + "a" * 90}, "callback_url"),
        ({**request_body("380661231231", "x" * 33)}, "phone.reference_id"),
    ]
    for body, field in cases:
        r = api.send(body)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["message"] == "The given data was invalid."
        assert field in r.json()["errors"], (field, r.json())
    r = api.send(request_body("380661231231", sender="unknown_agent"))
    assert r.status_code == 422 and "sender" in r.json()["errors"]
    r = api.client.post(
        "/api/messages/rcs/send", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["errors"] == {"body": ["The request body is not valid JSON."]}
    assert api.messages() == []
    # Limits that pass: 160 UTF-16 units, validity_seconds 30, both validities (seconds win).
    ok = api.send(request_body("380661231231", options={"text": "x" * 160}, validity_seconds=30, validity=72))
    assert ok.status_code == 200 and ok.json()["data"]["validity"] == 1


def test_reference_reuse_duplicates_and_idempotency(setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, _ = setup
    first = api.send(request_body("380661231231", "dup1"))
    assert first.status_code == 200
    again = api.send(request_body("380661231231", "dup1"))
    assert again.status_code == 429 and again.json() == {
        "message": "Too many duplicate request detected",
        "errors": {},
    }
    srv.clock.advance(11)
    reused = api.send(request_body("380661231231", "dup1"))
    assert reused.status_code == 422 and "phone.reference_id" in reused.json()["errors"]

    body = request_body("380661231299", "idem1")
    a = api.send(body, **{"Idempotency-Key": "k-1"})
    b = api.send(body, **{"Idempotency-Key": "k-1"})
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    c = api.send(request_body("380661231298", "idem2"), **{"Idempotency-Key": "k-1"})
    assert c.status_code == 422 and "Idempotency-Key" in c.json()["errors"]
    assert len(api.messages(**{"filter[reference_id]": "idem1"})) == 1


def test_webhooks_are_signed_and_retried_until_the_receiver_is_back(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    down = Receiver()  # not started: connections are refused
    srv.call(lambda db: accounts.set_callback_url(db, account_id=demo.account_id, url=down.url))
    secret = srv.call(lambda db: accounts.webhook_secret(db, account_id=demo.account_id))
    api = Api(srv, demo.api_key)
    mid = api.send(request_body("380661231231", sms=False)).json()["data"]["id"]
    api.wait_status(mid, "read", advance=0.5)
    try:
        down.start()
        eventually(lambda: down.received or (srv.clock.advance(3) and None), what="redelivery", timeout=10)
        eventually(
            lambda: (
                delivered_once(down, mid) == ["sent", "delivered", "read"] or (srv.clock.advance(30) and None)
            ),
            what="all three in order",
            timeout=10,
        )
        for r in down.received:
            verify(secret=secret, headers=r.headers, body=r.body)
            assert r.headers["webhook-id"].startswith("evt_")
        assert len({r.headers["webhook-id"] for r in down.received}) == 3
    finally:
        down.stop()


def test_private_callback_urls_are_refused_unless_allowed(server_factory, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(run_workers=True, webhooks_allow_private=False)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    api = Api(srv, demo.api_key)
    # Given with the request, such a URL is refused at once (tests/test_callback_urls.py); one already
    # stored (here the account's, set past the policy) is refused again at send time.
    assert api.send(request_body("380661231231", sms=False, callback_url=receiver.url)).status_code == 422
    srv.call(lambda db: accounts.set_callback_url(db, account_id=demo.account_id, url=receiver.url))
    mid = api.send(request_body("380661231231", sms=False)).json()["data"]["id"]
    api.wait_status(mid, "read", advance=0.5)

    async def outbox(db: Database) -> list[Any]:
        async with db.read() as conn:
            query = select(webhook_deliveries).where(webhook_deliveries.c.message_id == mid)
            return list(await conn.execute(query))

    # Every webhook was tried, and given up on by the callback URL policy, without a connection.
    tried = eventually(
        lambda: (rows := srv.call(outbox)) and all(r.status != "pending" for r in rows) and rows,
        what="the message's webhooks settled",
    )
    assert len(tried) == 3
    assert all(r.status == "failed" and "only sent to public addresses" in r.last_error for r in tried), tried
    assert receiver.received == []
