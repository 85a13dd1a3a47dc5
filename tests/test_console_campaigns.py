"""The console's campaigns screen over HTTP (no JavaScript), against a live server with workers: the
editor's preview, review (cost against the balance, agreeing with what the API accepts) and send, its
errors, a campaign's statistics and polling, stop and resume, CSRF, and another account's ids (404 on
every route)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from conftest import LiveServer, eventually
from rcsgate.domain.campaign_acceptance import REFUSAL_REASONS
from rcsgate.services import accounts, contact_book, senders, stoplist, tariffs
from rcsgate.services.demo import DEMO_TARIFF_CODE
from test_console_messages import Console, cheap_hashes, console_for, demo_console, other_console, text_of

__all__ = ["cheap_hashes"]
pytestmark = pytest.mark.usefixtures("cheap_hashes")

CAROUSEL = {
    "kind": "carousel",
    "card_count": "2",
    "card_0_title": "Spring sale",
    "card_0_text": "Up to 50% off",
    "card_0_media": "https://cdn.example.com/sale.png",
    "card_0_s0_text": "Shop now",
    "card_0_s0_type": "link",
    "card_0_s0_value": "https://shop.example.com",
    "card_1_title": "Questions?",
    "card_1_text": "Call us any time",
    "card_1_s0_text": "Call us",
    "card_1_s0_type": "call",
    "card_1_s0_value": "380661230000",
}


def editor(console: Console) -> dict[str, str]:
    """The new-campaign form's hidden and default fields, as a browser would send them back."""
    page = console.get("/console/campaigns/new")
    assert page.status_code == 200
    token = re.search(r'name="request_token" value="([^"]+)"', page.text)
    assert token
    return {
        "request_token": token[1],
        "sender": "demo_agent",
        "validity_hours": "72",
        "check_stop_list": "1",
        "add_to_contact_book": "1",
    }


def created_id(r: Any) -> int:
    assert r.status_code == 303, text_of(r.text)[:2000]
    match = re.fullmatch(r"/console/campaigns/(\d+)", r.headers["location"])
    assert match
    return int(match[1])


def wait_status(srv: LiveServer, console: Console, campaign_id: int, *statuses: str) -> str:
    def check() -> str | None:
        srv.clock.advance(1)
        page = console.get(f"/console/campaigns/{campaign_id}/progress", headers={"HX-Request": "true"})
        status = re.search(r'data-testid="campaign-status">([a-z]+)<', page.text)
        return page.text if status and status[1] in statuses else None

    return eventually(check, timeout=15, interval=0.1, what=f"campaign {campaign_id} in {statuses}")


@pytest.fixture
def srv(server_factory: Callable[..., LiveServer]) -> LiveServer:
    return server_factory(run_workers=True)


def test_carousel_campaign_from_pasted_numbers_preview_review_send_and_statistics(srv: LiveServer) -> None:
    console = demo_console(srv)
    form = {**editor(console), **CAROUSEL, "source": "paste"}
    form["phones_text"] = "380661230001\n380661230002,ref2\n380661239991\n48601234567\n"
    form.update(sms_enabled="1", sms_sender="DemoSMS", sms_text="Sale: shop.example.com")

    # The live preview: the phone fragment htmx swaps in, from the form as typed.
    preview = console.post("/console/campaigns/preview", form, headers={"HX-Request": "true"})
    assert preview.status_code == 200 and "<html" not in preview.text
    assert preview.text.count('data-testid="rcs-card"') == 2 and 'data-testid="rcs-carousel"' in preview.text
    for word in ("Spring sale", "Shop now", "Questions?", "Call us", "sale.png", "demo_agent"):
        assert word in preview.text
    half = console.post(
        "/console/campaigns/preview",
        {**form, "card_1_title": "", "card_1_text": "", "card_1_s0_text": "", "card_1_s0_value": ""},
    )
    assert "A carousel has at least 2 cards" in half.text
    invalid = console.post("/console/campaigns/preview", {**form, "card_0_s0_value": "ftp://x"})
    assert "card 1 suggestion 1 url" in invalid.text and 'data-testid="preview-problems"' in invalid.text

    # Without JavaScript, cards are added and removed by submitting the form, which comes back as typed.
    more = console.post("/console/campaigns/new", {**form, "action": "add_card"})
    assert more.status_code == 200 and more.text.count('data-testid="card-editor"') == 3
    assert 'value="Spring sale"' in more.text and "380661230002,ref2" in more.text
    fewer = console.post("/console/campaigns/new", {**form, "card_count": "3", "action": "remove_card_0"})
    assert fewer.text.count('data-testid="card-editor"') == 2 and 'value="Spring sale"' not in fewer.text

    # Review: the estimate against the balance, and nothing made yet.
    review = console.post("/console/campaigns/new", {**form, "action": "review"})
    assert review.status_code == 200, text_of(review.text)
    estimate = text_of(review.text.split('data-testid="estimate"')[1])
    assert (
        "3 of 4 recipients" in estimate
        and "UA: 3 \u00d7 0.0500 0.1500" in estimate
        and "0.1500 EUR" in estimate
    )
    assert "1 country" in estimate and "100.00 EUR" in estimate and "cover this campaign" in estimate
    assert 'data-testid="send"' in review.text
    assert console.api().get("/api/campaigns").json()["data"] == []

    # Without the CSRF token the form is refused and nothing is sent.
    refused = console.c.post("/console/campaigns/new", data={**form, "action": "send"})
    assert refused.status_code == 403
    campaign_id = created_id(console.post("/console/campaigns/new", {**form, "action": "send"}))
    # The same form again (a double click, a reload) makes no second campaign.
    assert created_id(console.post("/console/campaigns/new", {**form, "action": "send"})) == campaign_id

    api = console.api()
    made = api.get(f"/api/campaigns/{campaign_id}").json()["data"]
    assert made["calculated_price"] == 0.15 and made["sender"] == "demo_agent"
    messages = api.get("/api/messages", params={"filter[campaign_id]": campaign_id}).json()["data"]
    assert {m["reference_id"] for m in messages} == {None, "ref2"}
    options = messages[0]["rcs_options"]
    assert [c["title"] for c in options["cards"]] == ["Spring sale", "Questions?"]
    assert options["cards"][1]["suggestions"] == [
        {"type": "call", "text": "Call us", "phone": "380661230000"}
    ]

    live = wait_status(srv, console, campaign_id, "done")
    assert "hx-trigger" not in live  # a finished campaign stops the polling
    page = console.get(f"/console/campaigns/{campaign_id}")
    shown = text_of(page.text)
    assert "chart-funnel" in page.text and "Recipients: 4" in page.text and "Accepted: 3" in page.text
    assert "RCS country 1" in shown  # why the Polish number was not sent
    assert f'href="/console/messages?campaign_id={campaign_id}"' in page.text
    listing = console.get("/console/campaigns")
    assert f'id="campaign-row-{campaign_id}"' in listing.text and "chart-progress" in listing.text
    # Stopping a finished campaign is refused as the API refuses it.
    stop = console.post(f"/console/campaigns/{campaign_id}/stop")
    assert stop.status_code == 422 and "Invalid campaign status" in stop.text


def test_csv_and_lists_recipients_errors_schedule_stop_and_resume(srv: LiveServer) -> None:
    demo = demo_console(srv)  # (also the default tariff's prices)
    console = other_console(srv, balance="0.03", name="small")  # one 0.02 text message, not two
    base = {**editor(console), "kind": "text", "text": "Hello"}

    bad_csv = "phone,name\n380661230001,a\nnot-a-phone,b\n"
    bad = console.post(
        "/console/campaigns/new",
        {**base, "source": "csv", "action": "review"},
        files={"csv_file": ("numbers.csv", bad_csv.encode(), "text/csv")},
    )
    assert bad.status_code == 422 and "Row 3: 'not-a-phone' is not a phone number" in text_of(bad.text)
    too_long = console.post("/console/campaigns/new", {**base, "source": "paste", "text": "x" * 161})
    assert too_long.status_code == 422 and "160" in text_of(too_long.text)

    csv_text = "phone\n380661230001\n380661230002\n"
    review = console.post(
        "/console/campaigns/new",
        {**base, "source": "csv", "action": "review"},
        files={"csv_file": ("numbers.csv", csv_text.encode(), "text/csv")},
    )
    assert review.status_code == 200 and "do not cover this campaign" in text_of(review.text)
    kept = re.search(r'name="csv_data" value="([^"]*)"', review.text)
    assert kept and "380661230002" in kept[1]
    paused_id = created_id(
        console.post(
            "/console/campaigns/new",
            {**base, "source": "csv", "csv_data": csv_text, "csv_name": "numbers.csv", "action": "send"},
        )
    )
    wait_status(srv, console, paused_id, "paused")
    srv.call(lambda db: accounts.topup(db, srv.clock, account_id=console.account_id, amount="1"))
    assert console.post(f"/console/campaigns/{paused_id}/resume").status_code == 303
    wait_status(srv, console, paused_id, "done")

    group = srv.call(
        lambda db: contact_book.create_group(db, srv.clock, account_id=console.account_id, name="Customers")
    ).item
    srv.call(
        lambda db: contact_book.create_contact(
            db, srv.clock, account_id=console.account_id, phone="380661230005", group_ids=[group.id]
        )
    )
    scheduled_id = created_id(
        console.post(
            "/console/campaigns/new",
            {
                **editor(console),  # a new form: the last one made its campaign
                "kind": "text",
                "text": "Hello",
                "source": "lists",
                "groups": str(group.id),
                "start_at": "2026-01-05T09:30",
                "action": "send",
            },
        )
    )
    made = console.api().get(f"/api/campaigns/{scheduled_id}").json()["data"]
    assert made["status"] == "scheduled" and made["start_at"] == "2026-01-05 09:30:00"
    assert "Scheduled for 2026-01-05 09:30:00" in text_of(
        console.get(f"/console/campaigns/{scheduled_id}").text
    )
    assert console.post(f"/console/campaigns/{scheduled_id}/resume").status_code == 422
    assert console.post(f"/console/campaigns/{scheduled_id}/stop").status_code == 303
    assert console.api().get(f"/api/campaigns/{scheduled_id}").json()["data"]["status"] == "stopped"

    # Another account's campaign: 404 on every route, as the API answers; nothing changes.
    for path in (f"/console/campaigns/{paused_id}", f"/console/campaigns/{paused_id}/progress"):
        assert demo.get(path).status_code == 404
    for action in ("stop", "resume"):
        assert demo.post(f"/console/campaigns/{scheduled_id}/{action}").status_code == 404
    assert demo.api().get(f"/api/campaigns/{paused_id}").status_code == 404
    foreign = demo.post(
        "/console/campaigns/new",
        {
            **editor(demo),
            "kind": "text",
            "text": "Hi",
            "source": "lists",
            "groups": str(group.id),
            "action": "send",
        },
    )
    assert foreign.status_code == 422 and "groups.0" in foreign.text
    assert f'href="/console/campaigns/{paused_id}"' not in demo.get("/console/campaigns").text


# ------------------------------------------------------------------ the estimate agrees with the API

INVALID = "999123456789"  # a well-formed number no country claims


def reviewed(console: Console, form: dict[str, Any]) -> tuple[dict[str, int], int, Decimal, str]:
    """The console's estimate: refused recipients by reason, how many can be sent to, the RCS total,
    and the whole estimate as text."""
    r = console.post("/console/campaigns/new", {**editor(console), **form, "action": "review"})
    assert r.status_code == 200, text_of(r.text)[:2000]
    section = r.text.split('data-testid="estimate"')[1].split("</section>")[0]
    refused: dict[str, int] = {}
    if 'data-testid="estimate-refused"' in section:
        said = text_of(section.split('data-testid="estimate-refused"')[1].split("</p>")[0])
        refused = {m[2].replace(" ", "_"): int(m[1]) for m in re.finditer(r"(\d+) ([a-z ]+?)[,.]", said)}
    sendable = re.search(r"(\d+) of \d+ recipients? can be sent to", text_of(section))
    total = re.search(r'data-testid="estimate-total">([0-9.]+) ', section)
    assert sendable and total, text_of(section)
    return refused, int(sendable[1]), Decimal(total[1]), text_of(section)


def accepted(console: Console, body: dict[str, Any]) -> tuple[dict[str, int], int, Decimal]:
    """The API's acceptance of the same campaign: refused recipients by reason, accepted, price."""
    r = console.api().post("/api/campaigns/rcs/send", json=body)
    assert r.status_code == 200, r.text
    made = r.json()["data"]
    messages = (
        console.api()
        .get("/api/messages", params={"filter[campaign_id]": made["id"], "page[limit]": 500})
        .json()["data"]
    )
    rcs = [m for m in messages if m["type"] == "rcs"]
    refused = Counter(m["fail_reason"] for m in rcs if m["fail_reason"] in REFUSAL_REASONS)
    return dict(refused), len(rcs) - sum(refused.values()), Decimal(str(made["calculated_price"]))


def test_estimate_refuses_and_prices_exactly_what_the_api_accepts(srv: LiveServer) -> None:
    # The demo account (UA agent, every UA price) with an SMS alternative: a number of no country,
    # a Polish one, a stop-listed one, and two it sends to.
    demo = demo_console(srv)
    srv.call(
        lambda db: stoplist.attach(
            db, srv.clock, account_id=demo.account_id, phones=["380661230004"], list_type="rcs"
        )
    )
    phones = [INVALID, "48601234567", "380661230004", "380661230001", "380661230002"]
    form = {
        "source": "paste",
        "phones_text": "\n".join(phones),
        "kind": "text",
        "text": "Sale!",
        "sms_enabled": "1",
        "sms_sender": "DemoSMS",
        "sms_text": "Sale: shop.example.com",
    }
    body = {
        "phones": [{"number": p} for p in phones],
        "sender": "demo_agent",
        "options": {"text": "Sale!"},
        "alternative_channel": {"sms": {"sender": "DemoSMS", "text": "Sale: shop.example.com"}},
        "check_stop_list": True,
    }
    refused, sendable, total, shown = reviewed(demo, form)
    assert refused == {"invalid_number": 1, "country": 1, "stop_list": 1}
    assert (sendable, total) == (2, Decimal("0.04"))  # 2 x the UA text price
    assert "SMS fallbacks, at most (1 part each) 0.0500" in shown
    assert accepted(demo, body) == (refused, sendable, total)

    # An account whose agent is French, a country the tariff has no price for: every French number
    # it may send to is refused for the price. A Ukrainian number on its stop list is refused for
    # its country (checked first), a French one on it for the stop list (checked before the price).
    fr_id, fr_key = srv.new_account("fr")
    srv.call(lambda db: senders.create_agent(db, srv.clock, account_id=fr_id, name="fr_agent", country="FR"))
    fr = console_for(srv, fr_id, fr_key, "fr@example.com")
    srv.call(
        lambda db: stoplist.attach(
            db, srv.clock, account_id=fr_id, phones=["380661230009", "33612345678"], list_type="rcs"
        )
    )
    phones = [INVALID, "380661230009", "33612345678", "33612345679", "33612345680"]

    def check(text: str, sms: bool, refusals: dict[str, int], sent: int, cost: str) -> None:
        form = {"source": "paste", "phones_text": "\n".join(phones), "kind": "text", "text": text}
        body: dict[str, Any] = {
            "phones": [{"number": p} for p in phones],
            "sender": "fr_agent",
            "options": {"text": text},
        }
        if sms:
            form.update(sms_enabled="1", sms_sender="FrSMS", sms_text=text)
            body["alternative_channel"] = {"sms": {"sender": "FrSMS", "text": text}}
        estimate = reviewed(fr, {**form, "sender": "fr_agent"})
        assert estimate[:3] == (refusals, sent, Decimal(cost))
        assert accepted(fr, body) == estimate[:3]

    refused_for_price = {"invalid_number": 1, "country": 1, "stop_list": 1, "no_price": 2}
    check("Salut", False, refused_for_price, 0, "0")
    # With a French RCS price but none for SMS, an SMS alternative still leaves them unpriced.
    srv.call(
        lambda db: tariffs.set_price(
            db, code=DEMO_TARIFF_CODE, channel="rcs", kind="text", country="FR", price="0.03"
        )
    )
    check("Bonjour", True, refused_for_price, 0, "0")
    check("Bonsoir", False, {"invalid_number": 1, "country": 1, "stop_list": 1}, 2, "0.06")

    # A request the API refuses as a whole (here: another account's agent) is refused by the review
    # too, for the same reason, with no estimate.
    form = {
        "source": "paste",
        "phones_text": "33612345679",
        "kind": "text",
        "text": "Hi",
        "sender": "demo_agent",
    }
    wrong = fr.post("/console/campaigns/new", {**editor(fr), **form, "action": "review"})
    assert wrong.status_code == 422 and "The selected sender is invalid." in text_of(wrong.text)
    assert 'data-testid="estimate"' not in wrong.text
    body = {"phones": [{"number": "33612345679"}], "sender": "demo_agent", "options": {"text": "Hi"}}
    api = fr.api().post("/api/campaigns/rcs/send", json=body)
    assert api.status_code == 422 and api.json()["errors"]["sender"] == ["The selected sender is invalid."]


def test_editor_errors_keep_the_form_and_name_the_line(srv: LiveServer) -> None:
    console = demo_console(srv)
    used = console.api().post(
        "/api/messages/rcs/send",
        json={
            "phone": {"number": "380661230001", "reference_id": "used1"},
            "sender": "demo_agent",
            "options": {"text": "x"},
        },
    )
    assert used.status_code == 200, used.text
    form = {**editor(console), "kind": "text", "text": "Hello kept", "source": "paste"}

    # A reference id the account already used is refused by the service: told by its line (the
    # blank second line counts), at review as at send, and nothing is made.
    form["phones_text"] = "380661230002\n\n380661230003,used1\n"
    for action in ("review", "send"):
        r = console.post("/console/campaigns/new", {**form, "action": action})
        assert r.status_code == 422, text_of(r.text)[:2000]
        assert "Line 3: The reference id has already been taken." in text_of(r.text)
    assert console.api().get("/api/campaigns").json()["data"] == []

    # A CSV file too large: the error, with everything typed still in the form.
    big = b"phone\n" + b"380661230001\n" * (2 * 1024 * 1024 // 13 + 1)
    r = console.post(
        "/console/campaigns/new",
        {**form, "action": "review"},
        files={"csv_file": ("numbers.csv", big, "text/csv")},
    )
    assert r.status_code == 422 and "may not be larger than 2048 KB" in text_of(r.text)
    assert ">Hello kept</textarea>" in r.text and "380661230003,used1" in r.text
