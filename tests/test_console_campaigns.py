"""The console's campaigns screen over HTTP (no JavaScript), against a live server with workers: the
editor's preview, review (cost against the balance) and send, a campaign's statistics and polling,
stop and resume, CSRF, and another account's ids (404 on every route)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from conftest import LiveServer, eventually
from rcsgate.services import accounts, contact_book
from test_console_messages import Console, cheap_hashes, demo_console, other_console, text_of

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
