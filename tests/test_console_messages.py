"""The console's messages screen over HTTP, against a live server with workers: the log with the API's
filters and its own (status, channel, phone, agent), a message's page (content as the phone shows it,
timeline with reasons, price, SMS fallback, webhooks), sign-in and another account's ids (404).

``Console`` and ``console_for`` sign a user in (with tests/console_support.py) and are shared by the
other console test files."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from html import unescape
from typing import Any

import httpx
import pytest

from conftest import LiveServer, Receiver, eventually
from console_support import cheap_hashes, new_user, sign_in
from rcsgate.services import accounts, senders
from rcsgate.services.demo import ensure_demo


@dataclass
class Console:
    """A signed-in browser without JavaScript: cookies, and the session's CSRF token for forms."""

    srv: LiveServer
    account_id: int
    api_key: str
    c: httpx.Client
    csrf: str

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return checked(self.c.get(path, **kwargs))

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return checked(self.c.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs))

    @cached_property
    def api_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.srv.base_url, headers={"X-API-KEY": self.api_key}, timeout=30)

    def api(self) -> httpx.Client:
        """The same account through the API (one client per console)."""
        return self.api_client


def checked(r: httpx.Response) -> httpx.Response:
    """Every form a page shows carries the session's CSRF token (an empty one would be refused)."""
    assert 'name="csrf_token" value=""' not in r.text, r.request.url
    return r


def console_for(srv: LiveServer, account_id: int, api_key: str, email: str) -> Console:
    new_user(srv, account_id, email)
    client = sign_in(srv, email, follow_redirects=False)
    return Console(srv, account_id, api_key, client, client.csrf)  # type: ignore[attr-defined]


def demo_console(srv: LiveServer) -> Console:
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    return console_for(srv, demo.account_id, demo.api_key, "demo@example.com")


def other_console(srv: LiveServer, *, balance: str = "100", name: str = "other") -> Console:
    """A second account with its own UA agent (demo_agent, as the demo's) and a signed-in user."""
    account_id, key = srv.new_account(name, balance=balance)
    srv.call(
        lambda db: senders.create_agent(db, srv.clock, account_id=account_id, name="demo_agent", country="UA")
    )
    return console_for(srv, account_id, key, f"{name}@example.com")


def text_of(html: str) -> str:
    """A page's visible text, whitespace collapsed (for assertions on what a reader sees)."""
    body = re.sub(r"<(script|style|head)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def settle(srv: LiveServer, api: httpx.Client, ids: list[int], *, final: tuple[str, ...]) -> None:
    def check() -> bool:
        srv.clock.advance(1)
        data = api.get("/api/messages", params={"page[limit]": 500}).json()["data"]
        status = {m["id"]: m["status"] for m in data}
        return all(status.get(i) in final for i in ids)

    eventually(check, timeout=15, what="messages to settle")


CARD = {
    "cards": [
        {
            "title": "Spring sale",
            "text": "Up to 50% off <b>today</b>",
            "media": {"url": "https://cdn.example.com/img/sale.png"},
            "suggestions": [{"text": "Shop now", "url": "https://shop.example.com"}],
        }
    ]
}


__all__ = ["Console", "cheap_hashes", "console_for", "demo_console", "other_console", "text_of"]
pytestmark = pytest.mark.usefixtures("cheap_hashes")


@pytest.fixture
def env(server_factory: Callable[..., LiveServer], receiver: Receiver) -> tuple[LiveServer, Console]:
    srv = server_factory(run_workers=True)
    console = demo_console(srv)
    srv.call(lambda db: accounts.set_callback_url(db, account_id=console.account_id, url=receiver.url))
    return srv, console


def test_log_filters_message_page_sign_in_and_other_accounts(env: tuple[LiveServer, Console]) -> None:
    srv, console = env
    api = console.api()
    card = api.post(
        "/api/messages/rcs/send",
        json={
            "phone": {"number": "380661239991", "reference_id": "order42"},  # undelivered: SMS fallback
            "sender": "demo_agent",
            "options": CARD,
            "alternative_channel": {"sms": {"text": "Sale today", "sender": "DemoSMS"}},
        },
    )
    assert card.status_code == 200, card.text
    text = api.post(
        "/api/messages/rcs/send",
        json={"phone": {"number": "380661230001"}, "sender": "demo_agent", "options": {"text": "Hello"}},
    )
    card_id, text_id = card.json()["data"]["id"], text.json()["data"]["id"]
    settle(srv, api, [card_id, text_id], final=("undelivered", "read"))
    fallback = next(m for m in api.get("/api/messages").json()["data"] if m["type"] == "sms")
    settle(srv, api, [fallback["id"]], final=("delivered",))

    log = console.get("/console/messages")
    assert log.status_code == 200
    shown = text_of(log.text)
    assert "3 messages" in shown and "+380661239991" in shown and "+380661230001" in shown

    def ids(**query: str) -> set[int]:
        r = console.get("/console/messages", params=query)
        assert r.status_code == 200, r.text
        return {int(i) for i in re.findall(r'href="/console/messages/(\d+)"', r.text)}

    assert ids() == {card_id, text_id, fallback["id"]}
    assert ids(status="undelivered") == {card_id}
    assert ids(channel="sms") == {fallback["id"]}
    assert ids(channel="rcs", phone="+380661230001") == {text_id}
    assert ids(agent="DemoSMS") == {fallback["id"]}
    assert ids(reference_id="order42") == {
        card_id,
        fallback["id"],
    }  # the API's filter: the fallback shares it
    assert ids(id=str(text_id)) == {text_id}
    assert ids(created_from="2025-12-31T00:00", created_to="2025-12-31T23:59") == set()
    bad = console.get("/console/messages", params={"phone": "12ab", "status": "nonsense"})
    assert bad.status_code == 422
    assert "The phone must be 9 to 15 digits" in text_of(bad.text)

    page = console.get(f"/console/messages/{card_id}")
    assert page.status_code == 200
    shown = text_of(page.text)
    # The content as the phone shows it, escaped: the card's markup is text, never HTML.
    assert 'data-testid="phone-preview"' in page.text and "Spring sale" in shown and "Shop now" in shown
    assert "Up to 50% off &lt;b&gt;today&lt;/b&gt;" in page.text and "sale.png" in shown
    # The timeline, with the reason; the price (never charged), the fallback and the webhooks.
    timeline = page.text.split('data-testid="timeline"')[1].split("</ol>")[0]
    for status in ("accepted", "sending", "sent", "undelivered"):
        assert f">{status}<" in timeline
    assert "not_rcs_user" in shown or "undelivered" in shown
    assert "Charged 0.0000000 EUR" in shown
    assert f'href="/console/messages/{fallback["id"]}"' in page.text and "Sale today" in shown
    hooks = page.text.split('data-testid="webhooks"')[1].split("</table>")[0]
    assert "/hook" in hooks and "status" in hooks

    sms = text_of(console.get(f"/console/messages/{fallback['id']}").text)
    assert (
        f"replaces RCS message #{card_id}" in sms and "Sale today" in sms and "Charged 0.0250000 EUR" in sms
    )

    # Signed out: the sign-in page (htmx: 401 with HX-Redirect).
    with srv.client(follow_redirects=False) as anonymous:
        r = anonymous.get(f"/console/messages/{text_id}")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
        assert anonymous.get("/console/messages", headers={"HX-Request": "true"}).status_code == 401

    # Another account's message is not found, exactly as the API answers; its log does not list it.
    other = other_console(srv)
    assert other.get(f"/console/messages/{text_id}").status_code == 404
    assert other.api().get("/api/messages", params={"filter[id]": text_id}).json()["data"] == []
    assert other.get(f"/console/messages/{text_id + 1000}").status_code == 404
    assert other.get("/console/messages/abc").status_code == 422
    assert f'href="/console/messages/{text_id}"' not in other.get("/console/messages").text
    assert other.get("/console/messages", params={"id": str(text_id)}).text.count("No message matches") == 1
