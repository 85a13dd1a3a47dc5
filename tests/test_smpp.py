"""SMS over SMPP end to end: rcsgate's real SMPP connector against the fake SMSC over TCP — SMS
fallbacks sent, split and encoded as billed, receipts applied (before the submit's answer too, and
on a re-established bind), errors classed, throttling absorbed, replies posted, routes with
failover, and the sender's own connector winning over routes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer, Receiver, run
from conftest import eventually as _eventually
from rcsgate.clock import ManualClock
from rcsgate.services import accounts, connectors
from rcsgate.services.demo import ensure_demo
from smpp_local import Smpp34Thread, SmscThread, add_connector
from test_single_send import PRICE, Api, request_body


def eventually(check: Callable[[], Any], **options: Any) -> Any:
    options.setdefault("timeout", 20)
    return _eventually(check, **options)


@pytest.fixture
def smsc() -> Iterator[SmscThread]:
    with SmscThread() as thread:
        yield thread


Setup = tuple[LiveServer, Api, Receiver, SmscThread]


def _start(
    server_factory: Callable[..., LiveServer],
    receiver: Receiver,
    db_url: str,
    tmp_path: Path,
    *,
    route: Callable[[Any, Any], Any],
) -> tuple[LiveServer, Api]:
    clock = ManualClock()
    demo = run(lambda db: ensure_demo(db, clock, var_dir=tmp_path / "var"), db_url)
    run(lambda db: route(db, clock), db_url)
    run(lambda db: accounts.set_callback_url(db, account_id=demo.account_id, url=receiver.url), db_url)
    srv = server_factory(clock=clock, run_workers=True, connectors_refresh_seconds=0.2)
    return srv, Api(srv, demo.api_key)


@pytest.fixture
def smpp_setup(
    server_factory: Callable[..., LiveServer],
    receiver: Receiver,
    smsc: SmscThread,
    db_url: str,
    tmp_path: Path,
) -> Setup:
    """The demo account's SMS sender routed to the connector `smsc1` on the fake SMSC."""

    async def route(db: Any, clock: Any) -> None:
        await add_connector(db, clock, smsc)
        await connectors.set_sender_connector(db, sender_id=1, connector="smsc1")

    srv, api = _start(server_factory, receiver, db_url, tmp_path, route=route)
    return srv, api, receiver, smsc


def _fallback(api: Api, phone: str, text: str = "Hello from SMS") -> int:
    """Send an RCS message to a number without RCS (the simulator's 9990 suffix, unless the number
    ends otherwise) with an SMS alternative; the SMS fallback's id."""
    body = request_body(phone, options={"text": "Hi"})
    body["alternative_channel"]["sms"]["text"] = text
    r = api.send(body)
    assert r.status_code == 200, r.text
    mid = int(r.json()["data"]["id"])

    def child() -> int | None:
        ids = api.message(mid)["alternative_channels"]["sms"]["id"]
        return int(ids[0]) if ids else None

    return int(eventually(child, what="the SMS fallback"))


def _wait(api: Api, mid: int, *statuses: str, timeout: float = 20, advance: float = 0.0) -> dict[str, Any]:
    """The message once in one of ``statuses``; ``advance`` moves the clock on each look, so a retry
    with backoff comes due."""

    def check() -> dict[str, Any] | None:
        if advance:
            api.server.clock.advance(advance)
        m = api.message(mid)
        return m if m["status"] in statuses else None

    return dict(eventually(check, timeout=timeout, what=f"message {mid} in {statuses}"))


def _submits(smsc: SmscThread) -> list[Any]:
    return smsc.on_loop(lambda s: list(s.submits))


def test_sms_fallback_goes_through_smpp_delivered_and_charged_once(smpp_setup: Setup) -> None:
    _srv, api, receiver, smsc = smpp_setup
    before = api.balance()
    sms = _fallback(api, "380661239990")
    _wait(api, sms, "delivered")
    [submit] = _submits(smsc)
    assert submit.destination_addr == "380661239990" and submit.source_addr == "DemoSMS"
    assert submit.data_coding == 0 and submit.esm_class == 0 and submit.short_message == b"Hello from SMS"
    assert api.balance() == before - PRICE["sms"]
    eventually(
        lambda: [b["status"] for b in receiver.bodies() if b.get("id") == sms] == ["sent", "delivered"],
        what="the SMS's status webhooks",
    )
    eventually(lambda: smsc.on_loop(lambda s: s.pending_receipts()) == 0, what="the receipt acked")


def test_long_unicode_sms_is_split_as_billed_with_one_udh_reference(smpp_setup: Setup) -> None:
    _srv, api, _receiver, smsc = smpp_setup
    text = "Привіт! " * 20  # 160 UCS-2 units: 3 parts of at most 67
    before = api.balance()
    sms = _fallback(api, "380661249990", text)
    _wait(api, sms, "delivered")
    submits = _submits(smsc)
    assert len(submits) == 3
    assert {s.data_coding for s in submits} == {8} and {s.esm_class for s in submits} == {0x40}
    headers = [s.short_message[:6] for s in submits]
    assert {h[:4] for h in headers} == {bytes([5, 0, 3, headers[0][3]])}  # one reference
    assert [h[4:] for h in headers] == [bytes([3, 1]), bytes([3, 2]), bytes([3, 3])]
    joined = b"".join(s.short_message[6:] for s in submits).decode("utf-16-be")
    assert joined == text
    assert api.balance() == before - 3 * PRICE["sms"]


def test_undelivered_receipt_keeps_stat_and_err_and_charges_nothing(smpp_setup: Setup) -> None:
    _srv, api, receiver, smsc = smpp_setup
    smsc.on_loop(lambda s: setattr(s, "outcome", lambda dest: "UNDELIV"))
    before = api.balance()
    sms = _fallback(api, "380661259990")
    message = _wait(api, sms, "undelivered")
    assert message["fail_reason"] == "UNDELIV err:001"
    assert api.balance() == before
    eventually(
        lambda: any(b.get("id") == sms and b.get("status") == "undelivered" for b in receiver.bodies()),
        what="the undelivered webhook",
    )


def test_receipt_before_the_answer_and_on_a_new_bind_are_matched(smpp_setup: Setup) -> None:
    _srv, api, _receiver, smsc = smpp_setup
    smsc.on_loop(lambda s: setattr(s.faults, "receipt_before_response", True))
    first = _fallback(api, "380661269990")
    _wait(api, first, "delivered")
    smsc.on_loop(lambda s: setattr(s.faults, "receipt_before_response", False))
    # The next submit is accepted, then the connection drops before its answer and its receipt:
    # the message is sent again on the new bind; every receipt is matched there.
    smsc.on_loop(lambda s: (setattr(s, "receipt_delay", 0.3), setattr(s.faults, "drop_after", 1)))
    second = _fallback(api, "380661279990")
    _wait(api, second, "delivered", timeout=30, advance=1.0)
    assert smsc.on_loop(lambda s: s.bound_sessions()) == 1
    eventually(lambda: smsc.on_loop(lambda s: s.pending_receipts()) == 0, what="every receipt acked")


def test_permanent_error_fails_with_its_name_and_throttling_is_absorbed(smpp_setup: Setup) -> None:
    _srv, api, _receiver, smsc = smpp_setup
    smsc.on_loop(lambda s: (setattr(s.faults, "error_next", 1), setattr(s.faults, "error_status", 0x0B)))
    failed = _fallback(api, "380661289990")
    message = _wait(api, failed, "failed")
    assert message["fail_reason"] == "ESME_RINVDSTADR"
    smsc.on_loop(lambda s: setattr(s.faults, "throttle_next", 3))
    throttled = _fallback(api, "380661299990")
    _wait(api, throttled, "delivered")
    assert len([s for s in _submits(smsc) if s.destination_addr == "380661299990"]) == 1


def test_an_inbound_sms_is_posted_as_an_inbound_webhook(smpp_setup: Setup) -> None:
    _srv, api, receiver, smsc = smpp_setup
    sms = _fallback(api, "380661309990")
    _wait(api, sms, "delivered")
    smsc.call(lambda: smsc.smsc.send_mo("380661309990", "DemoSMS", "STOP please"))
    body = eventually(
        lambda: next((b for b in receiver.bodies() if b.get("text") == "STOP please"), None),
        what="the inbound webhook",
    )
    assert body["channel"] == "sms" and body["msisdn"] == "380661309990" and body["reply_to"] == sms
    assert body["sender"] == "DemoSMS"
    eventually(lambda: smsc.on_loop(lambda s: s.mo_acked) == 1, what="the reply acked after it was kept")


def test_route_fails_over_to_the_second_link_and_the_sender_connector_wins(
    server_factory: Callable[..., LiveServer], receiver: Receiver, db_url: str, tmp_path: Path
) -> None:
    with SmscThread() as first, SmscThread() as second, SmscThread() as own:

        async def route(db: Any, clock: Any) -> None:
            await add_connector(db, clock, first, "first")
            await add_connector(db, clock, second, "second")
            await add_connector(db, clock, own, "own")
            await connectors.add_route(db, clock, channel="sms", prefix="380", names=["first", "second"])

        srv, api = _start(server_factory, receiver, db_url, tmp_path, route=route)
        a = _fallback(api, "380661319990")
        _wait(api, a, "delivered")
        assert [s.destination_addr for s in _submits(first)] == ["380661319990"]
        first.stop_smsc()  # the first link dies
        b = _fallback(api, "380661329990")
        _wait(api, b, "delivered", timeout=30, advance=1.0)
        assert [s.destination_addr for s in _submits(second)] == ["380661329990"]
        # The sender's own connector wins over the route.
        srv.call(lambda db: connectors.set_sender_connector(db, sender_id=1, connector="own"))
        time.sleep(1.0)  # processes re-read connectors every 0.2 s here
        c = _fallback(api, "380661339990")
        _wait(api, c, "delivered")
        assert [s.destination_addr for s in _submits(own)] == ["380661339990"]
        assert len(_submits(first)) == 1 and len(_submits(second)) == 1


def test_against_smpp34s_smsc_long_sms_split_addressed_and_settled_by_text_receipts(
    server_factory: Callable[..., LiveServer], receiver: Receiver, db_url: str, tmp_path: Path
) -> None:
    """The happy path, a long message and receipts against smpp34's Server: an SMSC implementation
    nobody here wrote. Its ids are mixed case; the receipts carry them in lower case, in the text
    only (no TLVs)."""
    with Smpp34Thread() as smsc:

        async def route(db: Any, clock: Any) -> None:
            await add_connector(db, clock, smsc, "s34")
            await connectors.set_sender_connector(db, sender_id=1, connector="s34")

        _srv, api = _start(server_factory, receiver, db_url, tmp_path, route=route)
        text = "Your order 12345 has shipped. " * 7  # 210 GSM-7 characters: 2 parts of at most 153
        before = api.balance()
        sms = _fallback(api, "380661349990", text)
        _wait(api, sms, "sent")
        submits = eventually(lambda: list(smsc.submits) if len(smsc.submits) == 2 else None)
        for s in submits:
            assert (s.source_addr, s.source_addr_ton, s.source_addr_npi) == ("DemoSMS", 5, 0)
            assert (s.destination_addr, s.dest_addr_ton, s.dest_addr_npi) == ("380661349990", 1, 1)
            assert (s.registered_delivery, s.data_coding, s.esm_class) == (1, 0, 0x40)
        assert b"".join(bytes(s.short_message)[6:] for s in submits).decode("ascii") == text
        assert smsc.receipt("ab0001", "380661349990") == 0
        assert api.message(sms)["status"] == "sent"  # one part of two delivered
        assert smsc.receipt("ab0002", "380661349990") == 0
        _wait(api, sms, "delivered")
        assert api.balance() == before - 2 * PRICE["sms"]
