"""The console's Dashboard, Developers and Billing screens over plain HTTP against a real server: each
shows the signed-in account's real data, each action goes through the services the API and the CLI
use, and another account's ids are not found."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from conftest import LiveServer, Receiver, eventually
from console_support import account_with_user, cheap_hashes, new_user, sign_in
from rcsgate.clock import ManualClock
from rcsgate.domain.money import format_units
from rcsgate.services import accounts, auth, campaigns
from rcsgate.services.demo import ensure_demo
from rcsgate.store.db import Database
from rcsgate.store.tables import ledger_entries, webhook_deliveries
from rcsgate.webhooks.signing import verify

__all__ = ["cheap_hashes"]
pytestmark = pytest.mark.usefixtures("cheap_hashes")

SMS = {"sms": {"text": "Hello from SMS", "sender": "DemoSMS"}}


def _send(api: httpx.Client, phone: str, **extra: Any) -> int:
    r = api.post(
        "/api/messages/rcs/send",
        json={"phone": {"number": phone}, "sender": "demo_agent", "options": {"text": "Hi"}, **extra},
    )
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["id"])


def _rows(server: LiveServer, table: Any, account_id: int) -> list[Any]:
    async def read(db: Database) -> list[Any]:
        async with db.read() as conn:
            query = select(table).where(table.c.account_id == account_id).order_by(table.c.id)
            return list(await conn.execute(query))

    return server.call(read)


def _fragment(html: str) -> bool:
    return "<html" not in html and "<nav" not in html


def test_screens_show_the_accounts_real_data_and_webhooks_can_be_sent_again(
    server_factory: Callable[..., LiveServer], receiver: Receiver
) -> None:
    # Near the real time: receivers (verify) refuse signatures more than 5 minutes old.
    srv = server_factory(run_workers=True, clock=ManualClock(datetime.now(UTC)))
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    srv.call(lambda db: accounts.set_callback_url(db, account_id=demo.account_id, url=receiver.url))
    new_user(srv, demo.account_id, "demo@example.com")
    api = httpx.Client(base_url=srv.base_url, headers={"X-API-KEY": demo.api_key}, timeout=10)
    read = _send(api, "380661231231")
    delivered = _send(api, "380661239993")
    fallback = _send(api, "380661239990", alternative_channel=SMS)
    failed = _send(api, "380661239995")
    final = {read: "read", delivered: "delivered", fallback: "undelivered", failed: "failed"}

    def settled() -> bool:
        srv.clock.advance(0.5)
        data = api.get("/api/messages", params={"page[limit]": 15}).json()["data"]
        statuses = {m["id"]: m["status"] for m in data}
        return (
            all(statuses.get(i) == s for i, s in final.items()) and statuses.get(fallback + 1) != "accepted"
        )

    eventually(settled, what="messages settled", timeout=10)
    outbox = eventually(
        lambda: (
            (rows := _rows(srv, webhook_deliveries, demo.account_id))
            and all(r.status == "delivered" for r in rows)
            and len(rows) >= 8
            and rows
        ),
        what="webhooks delivered",
    )

    with closing(sign_in(srv, "demo@example.com")) as c:
        # Dashboard: 4 RCS messages and 1 SMS fallback today.
        page = c.get("/console/").text
        assert re.search(
            r'id="today-total">\s*<div class="label">Messages today</div>\s*<div class="value">5<', page
        )
        for status, n in (("read", 1), ("delivered", 2), ("undelivered", 1), ("failed", 1)):
            assert re.search(
                rf'<span class="badge {status}">{status}</span></td><td class="num">{n}</td>', page
            ), status
            assert f"{status}: {n}</title>" in page  # the SVG charts' tooltips
        assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') >= 3 and 'role="img"' in page
        # Delivery: 3 of 5 outcomes; read: 1 of 2 delivered RCS; fallback: 1 of 4 RCS messages.
        assert re.search(r'id="delivery-rate">.*?<div class="value">60\.0%', page, re.S)
        assert re.search(r'id="read-rate">.*?<div class="value">50\.0%', page, re.S)
        assert re.search(r'id="fallback-share">.*?<div class="value">25\.0%', page, re.S)
        assert "No campaign is running." in page

        # Billing: the balance, every ledger entry of the account, and the demo prices.
        account = srv.call(lambda db: accounts.get_account(db, demo.account_id))
        page = c.get("/console/billing").text
        assert format_units(account.balance_units) in page
        entries = _rows(srv, ledger_entries, demo.account_id)
        assert {e.kind for e in entries} >= {"topup", "reserve", "charge", "release"}
        for e in entries:
            assert f'id="ledger-{e.id}"' in page and format_units(e.amount) in page
        assert re.search(r'id="price-1-UA">.*?0\.0200000.*?0\.0350000.*?0\.0500000.*?0\.0250000', page)
        assert "Tariff 1 · Default" in page

        # Developers: the key, the callback URL, and every delivery with its answer.
        page = c.get("/console/developers").text
        key = srv.call(lambda db: auth.list_keys(db, account_id=demo.account_id))[0]
        assert f"<code>{key.prefix}…</code>" in page and receiver.url in page
        for row in outbox:
            assert re.search(
                rf'id="delivery-{row.id}">.*?badge delivered.*?<td class="num">200</td>\s*<td class="num">1</td>',
                page,
                re.S,
            ), row.id
        assert c.get("/console/developers", params={"status": "failed"}).text.count('id="delivery-') == 0
        detail = c.get(f"/console/developers/webhooks/{outbox[0].id}")
        assert detail.status_code == 200 and outbox[0].webhook_id in detail.text
        assert "&#34;msisdn&#34;" in detail.text or "&quot;msisdn&quot;" in detail.text

        # Redeliver: the same event (webhook-id, body) again, freshly signed; the attempt is recorded.
        target = outbox[0]
        before = len(receiver.received)
        r = c.post(f"/console/developers/webhooks/{target.id}/redeliver", data={"csrf_token": c.csrf})  # type: ignore[attr-defined]
        assert (
            r.status_code == 200
            and f"Redelivery of #{target.id}" in r.text
            and "delivered, HTTP 200" in r.text
        )
        again = receiver.received[before]
        assert again.headers["webhook-id"] == target.webhook_id and again.body == target.body.encode()
        secret = srv.call(lambda db: accounts.webhook_secret(db, account_id=demo.account_id))
        verify(secret=secret, headers=again.headers, body=again.body)
        r = c.post(
            f"/console/developers/webhooks/{target.id}/redeliver",
            headers={"HX-Request": "true", "X-CSRF-Token": c.csrf},  # type: ignore[attr-defined]
        )
        assert (
            r.status_code == 200
            and _fragment(r.text)
            and r.text.startswith(f'<tr id="delivery-{target.id}">')
        )
        assert "redelivered: delivered (HTTP 200)" in r.text
        assert [x.attempts for x in _rows(srv, webhook_deliveries, demo.account_id) if x.id == target.id] == [
            3
        ]

        # A test webhook to the callback URL, signed with the account's secret; and a failing receiver.
        before = len(receiver.received)
        r = c.post(
            "/console/developers/webhooks/test",
            headers={"HX-Request": "true", "X-CSRF-Token": c.csrf},  # type: ignore[attr-defined]
        )
        assert r.status_code == 200 and _fragment(r.text) and "Test webhook to" in r.text
        assert "delivered, HTTP 200" in r.text
        test = receiver.received[before]
        verify(secret=secret, headers=test.headers, body=test.body)
        assert test.json()["reference"] == "rcsgate-test" and test.json()["status"] == "delivered"
        receiver.status = 500
        r = c.post("/console/developers/webhooks/test", data={"csrf_token": c.csrf})  # type: ignore[attr-defined]
        assert r.status_code == 200 and "not delivered, HTTP 500" in r.text and "<nav" in r.text
        r = c.post(f"/console/developers/webhooks/{target.id}/redeliver", data={"csrf_token": c.csrf})  # type: ignore[attr-defined]
        assert "not delivered, HTTP 500" in r.text
        # Still delivered (it was once), with this attempt's answer.
        row = next(x for x in _rows(srv, webhook_deliveries, demo.account_id) if x.id == target.id)
        assert (row.status, row.last_status_code, row.attempts) == ("delivered", 500, 4)


def test_running_campaign_progress_is_polled_until_none_runs(server: LiveServer) -> None:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    new_user(server, demo.account_id, "demo@example.com")
    api = httpx.Client(base_url=server.base_url, headers={"X-API-KEY": demo.api_key}, timeout=10)
    r = api.post(
        "/api/campaigns/rcs/send",
        json={
            "phones": [{"number": f"38066123000{i}"} for i in range(3)],
            "sender": "demo_agent",
            "options": {"text": "Sale!"},
        },
    )
    assert r.status_code == 200, r.text
    cid = int(r.json()["data"]["id"])
    server.call(lambda db: campaigns.tick(db, server.clock))  # no workers here: start it by hand
    with closing(sign_in(server, "demo@example.com")) as c:
        page = c.get("/console/").text
        assert f'id="campaign-{cid}"' in page and "every 2s [document.visibilityState==='visible']" in page
        poll = c.get("/console/dashboard/campaigns", headers={"HX-Request": "true"})
        assert poll.status_code == 200 and _fragment(poll.text)
        row = re.search(rf'<tr id="campaign-{cid}">.*?</tr>', poll.text, re.S)
        assert row and "badge sending" in row.group(0) and "<svg" in row.group(0)
        # 0 processed, 3 queued, of 3.
        assert re.findall(r'<td class="num">(\d+)</td>', row.group(0)) == ["0", "0", "0", "3", "3"]
        server.call(
            lambda db: campaigns.stop_campaign(db, server.clock, account_id=demo.account_id, campaign_id=cid)
        )
        done = c.get("/console/dashboard/campaigns", headers={"HX-Request": "true"})
        assert (
            done.status_code == 286
            and "No campaign is running." in done.text
            and "hx-trigger" not in done.text
        )


def test_keys_callback_url_and_secret_through_the_console(
    server_factory: Callable[..., LiveServer], receiver: Receiver
) -> None:
    server = server_factory(clock=ManualClock(datetime.now(UTC)))
    account_id, _ = account_with_user(server, "acme", "ops@example.com")
    with closing(sign_in(server, "ops@example.com")) as c:
        csrf = c.csrf  # type: ignore[attr-defined]
        # A new key is shown once, and works against the API at once.
        r = c.post("/console/developers/keys", data={"label": "ci", "mode": "", "csrf_token": csrf})
        assert r.status_code == 200
        key = re.search(r'<code class="secret">(live_[^<]+)</code>', r.text)
        assert key and "shown only this once" in r.text
        assert c.get("/console/developers").text.count(key.group(1)) == 0
        with server.client() as api:
            assert api.post("/api/auth/login", json={"api_key": key.group(1)}).status_code == 200
        key_id = max(k.id for k in server.call(lambda db: auth.list_keys(db, account_id=account_id)))
        confirm = c.get(f"/console/developers/keys/{key_id}/revoke")
        assert confirm.status_code == 200 and f"Revoke key #{key_id}?" in confirm.text
        r = c.post(f"/console/developers/keys/{key_id}/revoke", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/console/developers?notice=key-revoked"
        assert "The key was revoked" in c.get(r.headers["location"]).text
        with server.client() as api:
            assert api.post("/api/auth/login", json={"api_key": key.group(1)}).status_code == 401

        # The callback URL, under the API's rules.
        for bad, reason in (
            ("ftp://example.com/x", "must be an http or https URL"),
            ("http://169.254.169.254/latest", "link-local"),
        ):
            r = c.post("/console/developers/callback-url", data={"callback_url": bad, "csrf_token": csrf})
            assert r.status_code == 422 and reason in r.text and 'id="callback-error"' in r.text
        r = c.post(
            "/console/developers/callback-url", data={"callback_url": receiver.url, "csrf_token": csrf}
        )
        assert r.status_code == 303
        assert server.call(lambda db: accounts.get_account(db, account_id)).rcs_callback_url == receiver.url

        # The signing secret: revealed on request, rotated.
        old = server.call(lambda db: accounts.webhook_secret(db, account_id=account_id))
        assert old not in c.get("/console/developers").text
        assert old in c.post("/console/developers/webhook-secret/reveal", data={"csrf_token": csrf}).text
        r = c.post("/console/developers/webhook-secret/rotate", data={"csrf_token": csrf})
        new = server.call(lambda db: accounts.webhook_secret(db, account_id=account_id))
        assert new != old and new in r.text and "The secret was rotated." in r.text
        r = c.post("/console/developers/webhooks/test", data={"csrf_token": csrf})
        verify(secret=new, headers=receiver.received[-1].headers, body=receiver.received[-1].body)

        r = c.post("/console/developers/callback-url", data={"callback_url": "", "csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"].endswith("notice=callback-cleared")
        r = c.post("/console/developers/webhooks/test", data={"csrf_token": csrf})
        assert r.status_code == 409 and "Set a callback URL first" in r.text


def test_another_accounts_ids_are_not_found(server: LiveServer) -> None:
    theirs, _ = account_with_user(server, "theirs", "them@example.com")
    account_with_user(server, "ours", "us@example.com")
    their_key = server.call(lambda db: auth.list_keys(db, account_id=theirs))[0]

    async def delivery(db: Database) -> int:
        async with db.write() as conn:
            result = await conn.execute(
                insert(webhook_deliveries)
                .values(
                    account_id=theirs,
                    kind="status",
                    url="http://127.0.0.1:9/hook",
                    body='{"id":1}',
                    webhook_id="evt_theirs",
                    status="failed",
                    attempts=5,
                    created_at=server.clock.now(),
                )
                .returning(webhook_deliveries.c.id)
            )
            return int(result.scalar_one())

    their_delivery = server.call(delivery)
    with closing(sign_in(server, "us@example.com")) as c:
        csrf = c.csrf  # type: ignore[attr-defined]
        for method, path in (
            ("GET", f"/console/developers/keys/{their_key.id}/revoke"),
            ("POST", f"/console/developers/keys/{their_key.id}/revoke"),
            ("GET", f"/console/developers/webhooks/{their_delivery}"),
            ("POST", f"/console/developers/webhooks/{their_delivery}/redeliver"),
            ("GET", "/console/developers/webhooks/99999"),
        ):
            r = c.request(method, path, data={"csrf_token": csrf} if method == "POST" else None)
            assert r.status_code == 404, (method, path, r.status_code)
            assert "There is no such page or object in your account." in r.text and "<nav" in r.text
        r = c.post(
            f"/console/developers/webhooks/{their_delivery}/redeliver",
            headers={"HX-Request": "true", "X-CSRF-Token": csrf},
        )
        assert r.status_code == 404 and r.headers["hx-retarget"] == "#flash" and _fragment(r.text)
        # Nothing of theirs shows on our screens.
        for path in ("/console/", "/console/developers", "/console/billing"):
            page = c.get(path).text
            assert "theirs" not in page and their_key.prefix not in page and "evt_theirs" not in page
    assert server.call(lambda db: auth.list_keys(db, account_id=theirs))[0].revoked_at is None
