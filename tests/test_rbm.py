"""Google RBM end to end: rcsgate's real RBM connector (google-auth tokens, aiohttp) against the local
RBM over HTTP, and Google's signed events back through the ingress: every answer, event, the
handshake, forged and replayed pushes, revocation both ways, taps, replies and accept-time limits."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from conftest import LiveServer, Receiver, run
from conftest import eventually as _eventually
from rbm_local import AGENT_ID, CLIENT_TOKEN, RbmThread, add_connector
from rcsgate.clock import ManualClock
from rcsgate.connectors.rbm import protocol
from rcsgate.connectors.rbm.fake_events import status_event
from rcsgate.services import accounts, connectors, upstream_events
from rcsgate.services.demo import DEMO_AGENT, ensure_demo
from rcsgate.store.tables import upstream_events as upstream_events_table
from rcsgate.store.tables import upstream_events_pending
from test_metrics import parse, value
from test_single_send import CAROUSEL, PRICE, Api, request_body


def eventually(check: Callable[[], Any], **options: Any) -> Any:
    """conftest's, with more time: events travel the local RBM's push queue one POST at a time."""
    options.setdefault("timeout", 20)
    return _eventually(check, **options)


@pytest.fixture
def rbm() -> Iterator[RbmThread]:
    with RbmThread() as thread:
        yield thread


@pytest.fixture
def rbm_setup(
    server_factory: Callable[..., LiveServer], receiver: Receiver, rbm: RbmThread, db_url: str, tmp_path: Path
) -> tuple[LiveServer, Api, Receiver, RbmThread]:
    """The demo account whose agent is routed to a local RBM connector `rbm1`, a server with workers,
    and the local RBM pushing its events to the server's ingress."""
    return _set_up(server_factory, receiver, rbm, db_url, tmp_path)


def _set_up(
    server_factory: Callable[..., LiveServer], receiver: Receiver, rbm: RbmThread, db_url: str, tmp_path: Path
) -> tuple[LiveServer, Api, Receiver, RbmThread]:
    clock = ManualClock()
    demo = run(lambda db: ensure_demo(db, clock, var_dir=tmp_path / "var"), db_url)
    run(lambda db: add_connector(db, clock, rbm, rbm.key()), db_url)
    agent_id = run(lambda db: _agent_id(db, demo.account_id), db_url)
    run(lambda db: connectors.set_agent_connector(db, agent_id=agent_id, connector="rbm1"), db_url)
    run(lambda db: accounts.set_callback_url(db, account_id=demo.account_id, url=receiver.url), db_url)
    srv = server_factory(clock=clock, run_workers=True, connectors_refresh_seconds=0.2)
    rbm.on_loop(lambda r: r.set_webhook(f"{srv.base_url}/api/upstream/rbm/rbm1"))
    return srv, Api(srv, demo.api_key), receiver, rbm


async def _agent_id(db: Any, account_id: int) -> int:
    from rcsgate.services import senders

    return next(a.id for a in await senders.list_agents(db, account_id=account_id) if a.name == DEMO_AGENT)


def _wait(api: Api, mid: int, *statuses: str, advance: float = 0.0) -> dict[str, Any]:
    """The message once in one of ``statuses``: events travel the local RBM's push queue one POST at a
    time, so this waits longer than the simulator tests do."""

    def check() -> dict[str, Any] | None:
        if advance:
            api.server.clock.advance(advance)
        m = api.message(mid)
        return m if m["status"] in statuses else None

    return eventually(check, timeout=20, what=f"message {mid} in {statuses}")


def _sent(api: Api, body: dict[str, Any]) -> int:
    r = api.send(body)
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["id"])


def _children(api: Api, mid: int) -> list[int]:
    return list(api.message(mid)["alternative_channels"]["sms"]["id"])


def test_carousel_delivered_read_charged_once(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver, rbm = rbm_setup
    before = api.balance()
    mid = _sent(api, request_body("380661231231", "rbm1"))
    _wait(api, mid, "read")
    assert api.balance() == before - PRICE["carousel"]
    eventually(
        lambda: (
            [b["status"] for b in receiver.bodies() if b.get("id") == mid] == ["sent", "delivered", "read"]
        )
    )
    [entry] = rbm.journal()
    assert entry["submits"] == 1 and entry["outcome"] == "read" and entry["phoneNumber"] == "+380661231231"
    assert protocol.message_id_of(_salt(srv), entry["messageId"]) == mid
    assert _children(api, mid) == []


def _salt(srv: LiveServer) -> int:
    record = srv.call(lambda db: connectors.get(db, "rbm1"))
    return int(record.config["salt"])


def test_mapping_reaches_google_as_agent_messages(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    _srv, api, _receiver, rbm = rbm_setup
    text = _sent(api, request_body("380661230001", options={"text": "Hello"}, sms=False))
    carousel = _sent(api, request_body("380661230002", sms=False))
    _wait(api, text, "read")
    _wait(api, carousel, "read")
    bodies = rbm.on_loop(lambda r: {m.phone: m.answer for m in r.messages.values()})
    assert bodies["+380661230001"]["contentMessage"] == {"text": "Hello"}
    cards = bodies["+380661230002"]["contentMessage"]["richCard"]["carouselCard"]["cardContents"]
    assert [c["description"] for c in cards] == [c["text"] for c in CAROUSEL["cards"]]
    first = cards[0]["suggestions"]
    assert first[0]["action"]["openUrlAction"] == {"url": "https://domain.com/"}
    assert first[1]["action"]["dialAction"] == {"phoneNumber": "+380971112233"}
    assert protocol.parse_postback(first[1]["action"]["postbackData"]) == (carousel, 0, 1)
    assert bodies["+380661230002"]["ttl"].endswith("s")


def test_not_rcs_user_is_undelivered_now_with_sms_fallback_and_no_rcs_charge(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    _srv, api, _receiver, _rbm = rbm_setup
    before = api.balance()
    mid = _sent(api, request_body("380661239990"))
    _wait(api, mid, "undelivered")
    [child] = eventually(lambda: _children(api, mid))
    _wait(api, child, "delivered", advance=0.5)  # the SMS goes through the simulator
    assert api.balance() == before - PRICE["sms"]


def test_non_tester_403_fails_with_the_reason(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver, _rbm = rbm_setup
    before = api.balance()
    mid = _sent(api, request_body("380661239998"))
    _wait(api, mid, "failed")
    hook = eventually(lambda: next((b for b in receiver.bodies() if b.get("id") == mid), None))
    assert hook["status"] == "failed" and hook["errorDescription"] == "agent_not_launched"
    assert _children(api, mid) == []
    eventually(lambda: api.balance() == before)
    assert srv.call(lambda db: _reserved(db)) == 0


async def _reserved(db: Any) -> int:
    from sqlalchemy import func, select

    from rcsgate.store.tables import accounts as accounts_table

    async with db.read() as conn:
        return int((await conn.execute(select(func.sum(accounts_table.c.reserved)))).scalar_one() or 0)


def test_google_400_fails_with_googles_message(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, _receiver, _rbm = rbm_setup
    mid = _sent(api, request_body("380661239995", sms=False))
    _wait(api, mid, "failed")
    details = srv.call(lambda db: _event_details(db, mid))
    assert any(d and d.startswith("Google refused the message") for d in details), details


async def _event_details(db: Any, mid: int) -> list[str | None]:
    from sqlalchemy import select

    from rcsgate.store.tables import message_events

    async with db.read() as conn:
        rows = await conn.execute(select(message_events.c.detail).where(message_events.c.message_id == mid))
        return [r.detail for r in rows]


def test_unavailable_is_retried_with_backoff_then_delivered(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    _srv, api, _receiver, rbm = rbm_setup
    mid = _sent(api, request_body("380661239997", sms=False))
    _wait(api, mid, "read", advance=5)
    [entry] = rbm.journal()
    assert entry["submits"] == 4 and entry["accepted"]


def test_expired_token_is_refreshed_once_and_the_send_goes_through(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    _srv, api, _receiver, rbm = rbm_setup
    _wait(api, _sent(api, request_body("380661230010", sms=False)), "read")
    issued = rbm.stats()["tokens_issued"]
    assert rbm.on_loop(lambda r: r.expire_tokens()) >= 1
    _wait(api, _sent(api, request_body("380661230011", sms=False)), "read")
    stats = rbm.stats()
    assert stats["tokens_issued"] == issued + 1 and stats["unauthenticated"] >= 1


def test_tap_is_a_click_webhook_with_the_customers_postback(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    _srv, api, receiver, _rbm = rbm_setup
    mid = _sent(api, request_body("380661239994"))
    _wait(api, mid, "read")
    click = eventually(
        lambda: next((b for b in receiver.bodies() if b.get("id") == mid and "postback" in b), None),
        timeout=20,
    )
    assert click["text"] == "Go to site" and click["postback"] == "site" and click["msisdn"] == "380661239994"


def test_ttl_revoked_by_google_expires_and_falls_back(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    _srv, api, _receiver, _rbm = rbm_setup
    mid = _sent(api, request_body("380661239991"))
    _wait(api, mid, "expired")
    [child] = eventually(lambda: _children(api, mid))
    _wait(api, child, "delivered", advance=0.5)


def test_validity_end_revokes_then_falls_back(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, _receiver, rbm = rbm_setup
    before = api.balance()
    mid = _sent(api, request_body("380661239992", validity_seconds=60))
    _wait(api, mid, "sent")
    srv.clock.advance(61)
    _wait(api, mid, "expired")
    [entry] = rbm.journal()
    assert entry["revoked_by"] == "agent" and entry["revoke_requests"] == 1
    [child] = eventually(lambda: _children(api, mid))
    _wait(api, child, "delivered", advance=0.5)
    assert api.balance() == before - PRICE["sms"]  # the revoked RCS message costs nothing


def test_revoke_after_delivery_keeps_the_message_and_sends_no_sms(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, _receiver, rbm = rbm_setup
    rbm.on_loop(lambda r: r.set_webhook(None))  # Google delivered, but its event is late
    before = api.balance()
    mid = _sent(api, request_body("380661230020", validity_seconds=60))
    _wait(api, mid, "sent")
    srv.clock.advance(61)
    eventually(lambda: rbm.journal()[0]["revoke_requests"] == 1, what="a revoke")
    srv.clock.advance(1)
    assert api.message(mid)["status"] == "sent" and _children(api, mid) == []
    rbm.on_loop(lambda r: r.set_webhook(f"{srv.base_url}/api/upstream/rbm/rbm1"))
    _wait(api, mid, "read")
    assert _children(api, mid) == [] and api.balance() == before - PRICE["carousel"]


def test_user_replies_are_inbound_webhooks(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    _srv, api, receiver, rbm = rbm_setup
    mid = _sent(api, request_body("380661230030", "conv1", sms=False))
    _wait(api, mid, "read")
    with httpx.Client(base_url=rbm.url) as c:
        for body in (
            {"agentId": AGENT_ID, "text": "Yes please"},
            {"agentId": AGENT_ID, "location": {"latitude": 50.45, "longitude": 30.52}},
        ):
            r = c.post("/v1/local/phones/+380661230030/userMessages", json=body)
            assert r.status_code == 200, r.text
    inbound = eventually(
        lambda: (
            [b for b in receiver.bodies() if b.get("type") == "inbound"]
            if len([b for b in receiver.bodies() if b.get("type") == "inbound"]) == 2
            else None
        )
    )
    # Pushed by concurrent push slots (as Google may), so in either order.
    (text,) = [b for b in inbound if b.get("location") is None]
    (location,) = [b for b in inbound if b.get("location") is not None]
    assert text["text"] == "Yes please" and text["msisdn"] == "380661230030" and text["channel"] == "rcs"
    assert text["reply_to"] == mid and text["reference"] == "conv1" and text["sender"] == DEMO_AGENT
    assert location["location"] == {"latitude": 50.45, "longitude": 30.52}


# ------------------------------------------------------------------ the ingress itself


def _push(
    srv: LiveServer, event: dict[str, Any], token: str = CLIENT_TOKEN, **headers: str
) -> httpx.Response:
    body, signed = protocol.envelope(event, token)
    with srv.client() as c:
        return c.post("/api/upstream/rbm/rbm1", content=body, headers={**signed, **headers})


def test_handshake_echoes_the_secret_only_for_our_client_token(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    srv, _api, _receiver, rbm = rbm_setup
    with srv.client() as c:
        ok = c.post("/api/upstream/rbm/rbm1", json={"clientToken": CLIENT_TOKEN, "secret": "1234567890"})
        assert ok.status_code == 200 and ok.text == "1234567890"
        bad = c.post("/api/upstream/rbm/rbm1", json={"clientToken": "SOMEONEELSE", "secret": "1"})
        assert bad.status_code == 401
        assert (
            c.post("/api/upstream/rbm/nope", json={"clientToken": CLIENT_TOKEN, "secret": "1"}).status_code
            == 404
        )
    result = rbm.call(lambda: rbm.rbm.validate_webhook())
    assert result.ok


def test_forged_unsigned_and_replayed_events_change_nothing_more(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    srv, api, receiver, rbm = rbm_setup
    rbm.on_loop(lambda r: r.set_webhook(None))
    mid = _sent(api, request_body("380661239992", sms=False))
    _wait(api, mid, "sent")
    uuid = rbm.journal()[0]["messageId"]
    event = {
        "eventType": "DELIVERED",
        "eventId": "EV1",
        "messageId": uuid,
        "agentId": AGENT_ID,
        "senderPhoneNumber": "+380661239992",
        "sendTime": "2026-01-01T12:00:01.000Z",
    }
    assert _push(srv, event, token="WRONGTOKENWRONG").status_code == 401
    body, _ = protocol.envelope(event, CLIENT_TOKEN)
    with srv.client() as c:
        assert (
            c.post(
                "/api/upstream/rbm/rbm1", content=body, headers={"content-type": "application/json"}
            ).status_code
            == 401
        )
        # A valid signature over other data does not sign this data.
        forged = json.loads(body)
        forged["message"]["data"] = base64.b64encode(
            json.dumps({**event, "eventType": "READ"}).encode()
        ).decode()
        sig = protocol.signature(CLIENT_TOKEN, json.dumps(event).encode())
        assert (
            c.post(
                "/api/upstream/rbm/rbm1", json=forged, headers={protocol.SIGNATURE_HEADER: sig}
            ).status_code
            == 401
        )
    assert api.message(mid)["status"] == "sent"
    first = _push(srv, event)
    assert first.status_code == 200 and first.json()["new"] is True
    again = _push(srv, event)
    assert again.status_code == 200 and again.json()["new"] is False
    assert api.message(mid)["status"] == "delivered"
    eventually(
        lambda: [b["status"] for b in receiver.bodies() if b.get("id") == mid] == ["sent", "delivered"]
    )
    assert srv.call(lambda db: _charges(db, mid)) == 1


async def _charges(db: Any, mid: int) -> int:
    from sqlalchemy import func, select

    from rcsgate.store.tables import ledger_entries

    async with db.read() as conn:
        query = select(func.count()).where(
            ledger_entries.c.message_id == mid, ledger_entries.c.kind == "charge"
        )
        return int((await conn.execute(query)).scalar_one())


def test_duplicated_and_reordered_events_end_the_same_with_many_pushes_at_once(
    server_factory: Callable[..., LiveServer], receiver: Receiver, db_url: str, tmp_path: Path
) -> None:
    """Every event pushed twice, every DELIVERED after its READ, 64 pushes in flight: the ingress
    applies what arrives together in shared transactions, and still each message's webhooks come in
    order, once, with one charge."""
    with RbmThread(push_concurrency=64) as rbm:
        srv, api, receiver, rbm = _set_up(server_factory, receiver, rbm, db_url, tmp_path)
        rbm.on_loop(
            lambda r: setattr(
                r, "faults", r.faults.model_copy(update={"duplicate_rate": 1.0, "out_of_order_rate": 1.0})
            )
        )
        mids = [_sent(api, request_body(f"3806612{i:05d}", sms=False)) for i in range(40)]
        for mid in mids:
            _wait(api, mid, "read")
        eventually(lambda: rbm.stats()["duplicates_pushed"] >= 80)
        for mid in mids:
            eventually(
                lambda mid=mid: (
                    [b["status"] for b in receiver.bodies() if b.get("id") == mid]
                    == ["sent", "delivered", "read"]
                ),
                what=f"the webhooks of {mid}",
            )
            assert srv.call(lambda db, mid=mid: _charges(db, mid)) == 1


def test_google_limits_are_checked_at_accept_time_for_rbm_agents_only(rbm_setup, db_url: str) -> None:  # type: ignore[no-untyped-def]
    srv, api, _receiver, _rbm = rbm_setup
    body = request_body("380661230050", sms=False)
    body["options"]["cards"][0]["media"]["url"] = "http://domain.com/image.png"
    r = api.send(body)
    assert r.status_code == 422, r.text
    assert "options.cards.0.media.url" in r.json()["errors"]
    assert api.messages() == []
    agent_id = srv.call(lambda db: _demo_agent_id(db))
    srv.call(lambda db: connectors.set_agent_connector(db, agent_id=agent_id, connector="simulator"))
    assert api.send(body).status_code == 200


async def _demo_agent_id(db: Any) -> int:
    from rcsgate.services import senders

    return next(a.id for a in await senders.list_agents(db) if a.name == DEMO_AGENT)


def test_bsg_sdk_sends_through_an_rbm_routed_agent(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    import bsg_api

    srv, api, _receiver, rbm = rbm_setup
    key = api.client.headers["X-API-KEY"]
    config = bsg_api.Configuration(host=srv.base_url)
    with bsg_api.ApiClient(config) as client:
        token = bsg_api.AuthApi(client).login(bsg_api.LoginRequest(api_key=key))
    config.access_token = token.bearer
    with bsg_api.ApiClient(config) as client:
        message = bsg_api.RcsMessage(
            phone=bsg_api.Phone(number="380661230060", reference_id="sdkrbm"),
            sender=DEMO_AGENT,
            options=bsg_api.Options(bsg_api.Text(text="From the SDK")),
        )
        sent = bsg_api.MessageRCSApi(client).rcs_single(message)
    assert sent.data is not None
    mid = sent.data.id
    _wait(api, mid, "read")
    assert rbm.journal()[0]["phoneNumber"] == "+380661230060"
    assert Decimal(api.message(mid)["amount"]["value"]) == PRICE["text"]


def test_an_event_stored_but_not_applied_is_applied_once_after_a_crash(rbm_setup) -> None:  # type: ignore[no-untyped-def]
    """A push is answered once its event is stored, and applied right after. A crash in between
    leaves the row as this test writes it (stored, not applied): the workers apply it, once, even
    with several passes racing for it."""
    srv, api, receiver, rbm = rbm_setup
    rbm.on_loop(lambda r: r.set_webhook(None))  # no pushes: the event below is the only one
    before = api.balance()
    mid = _sent(api, request_body("380661238888", options={"text": "Hi"}, sms=False))
    _wait(api, mid, "sent")
    [entry] = rbm.journal()
    event = status_event(
        "DELIVERED",
        agent_id=AGENT_ID,
        phone=entry["phoneNumber"],
        message_id=entry["messageId"],
        at=srv.clock.now(),
    )
    srv.call(lambda db: _stored_unapplied(db, srv.clock.now(), event))
    assert srv.call(lambda db: _unapplied_gauge(db, srv.clock)) == 1
    srv.clock.advance(upstream_events.LEFT_OVER_SECONDS + 1)

    async def race(db: Any) -> list[int]:
        passes = [upstream_events.apply_left_over(db, srv.clock) for _ in range(3)]
        return [changed.changed for _, changed in await asyncio.gather(*passes)]

    assert sum(srv.call(race)) <= 1  # the workers' own pass may have been first
    _wait(api, mid, "delivered")
    assert api.balance() == before - PRICE["text"]
    eventually(
        lambda: [b["status"] for b in receiver.bodies() if b.get("id") == mid] == ["sent", "delivered"]
    )
    assert srv.call(lambda db: _unapplied(db)) == 0
    assert srv.call(lambda db: _unapplied_gauge(db, srv.clock)) == 0
    assert srv.call(lambda db: upstream_events.apply_left_over(db, srv.clock))[0] == 0


async def _stored_unapplied(db: Any, now: Any, event: dict[str, Any]) -> None:
    record = await connectors.get(db, "rbm1")
    async with db.write() as conn:
        row = await conn.execute(
            insert(upstream_events_table)
            .values(
                connector_id=record.id,
                event_key=event["eventId"],
                kind="delivered",
                payload=json.dumps(event),
                received_at=now,
            )
            .returning(upstream_events_table.c.id)
        )
        await conn.execute(insert(upstream_events_pending).values(event_id=row.scalar_one(), received_at=now))


async def _unapplied(db: Any) -> int:
    async with db.read() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(upstream_events_pending))).scalar_one()
        )


async def _unapplied_gauge(db: Any, clock: Any) -> float:
    """rcsgate_upstream_events_unapplied as the process leading the sweeper exports it."""
    from rcsgate.metrics.exposition import Exporter

    text = (await Exporter(db=db, clock=clock, leading=lambda: True).render()).decode()
    return value(parse(text), "rcsgate_upstream_events_unapplied")
