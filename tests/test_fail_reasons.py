"""Why a message failed: `fail_reason` on every GET /api/messages item (an rcsgate addition), for
messages refused when accepted and for those that failed later; the official client still parses it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bsg_api
import httpx

from conftest import LiveServer, eventually
from rcsgate.services import auth, contacts, senders
from rcsgate.services.demo import ensure_demo


def _text(number: str, **extra: Any) -> dict[str, Any]:
    return {"phone": {"number": number}, "sender": "demo_agent", "options": {"text": "Hi"}, **extra}


def _reasons(api: httpx.Client) -> dict[int, tuple[str, str | None]]:
    r = api.get("/api/messages", params={"page[limit]": 500})
    assert r.status_code == 200, r.text
    items = r.json()["data"]
    assert all("fail_reason" in m for m in items)
    return {m["phone"]: (m["status"], m["fail_reason"]) for m in items}


def test_messages_refused_when_accepted_say_why(server: LiveServer) -> None:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    api = httpx.Client(base_url=server.base_url, headers={"X-API-KEY": demo.api_key}, timeout=10)
    stop = {"phones": ["380661230010"], "types": ["rcs"]}
    assert api.post("/api/stoplist/attach", json=stop).status_code == 200
    for number in ("48601234567", "380661230010", "999123456789", "380661230011"):
        assert api.post("/api/messages/rcs/send", json=_text(number)).status_code == 200
    campaign = {
        "phones": [{"number": "48601234568"}, {"number": "380661230012"}],
        "sender": "demo_agent",
        "options": {"text": "Hi"},
        "start_at": "2026-01-05 10:00:00",
    }
    created = api.post("/api/campaigns/rcs/send", json=campaign).json()["data"]
    assert api.patch(f"/api/campaigns/{created['id']}/stop").status_code == 200

    # Test mode sends only to verified contacts: a campaign's other numbers fail.
    async def test_mode(db: Any) -> str:
        await senders.create_agent(
            db, server.clock, account_id=demo.account_id, name="test_agent", country="UA", is_test=True
        )
        await contacts.verify(db, server.clock, account_id=demo.account_id, phone="380661230013")
        return (await auth.create_key(db, server.clock, account_id=demo.account_id, mode="test")).key

    test_key = server.call(test_mode)
    trial = {**campaign, "phones": [{"number": "380661230013"}, {"number": "380661230014"}]}
    trial.update(sender="test_agent", start_at=None)
    r = httpx.post(f"{server.base_url}/api/campaigns/rcs/send", json=trial, headers={"X-API-KEY": test_key})
    assert r.status_code == 200, r.text

    assert _reasons(api) == {
        48601234567: ("failed", "country"),
        380661230010: ("failed", "stop_list"),
        999123456789: ("failed", "invalid_number"),
        380661230011: ("accepted", None),
        48601234568: ("failed", "country"),
        380661230012: ("failed", "stopped"),
        380661230013: ("accepted", None),
        380661230014: ("failed", "not_verified"),
    }


def test_messages_that_failed_later_say_why(server_factory: Callable[..., LiveServer]) -> None:
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    api = httpx.Client(base_url=srv.base_url, headers={"X-API-KEY": demo.api_key}, timeout=10)
    # The simulator's outcomes by the number's last four digits (connectors/simulation.py).
    expected = {
        380661231231: ("read", None),
        380661239990: ("undelivered", "not_rcs_user"),
        380661239991: ("undelivered", "undelivered"),
        380661239992: ("expired", "validity"),
        380661239995: ("failed", "rejected"),
    }
    for phone in expected:
        r = api.post("/api/messages/rcs/send", json=_text(str(phone), validity_seconds=30))
        assert r.status_code == 200, r.text

    def settled() -> dict[int, tuple[str, str | None]] | None:
        srv.clock.advance(5)
        reasons = _reasons(api)
        return reasons if reasons == expected else None

    eventually(settled, what="every message's end", timeout=15)

    # The official client parses the items (its models ignore the field they do not know).
    config = bsg_api.Configuration(host=srv.base_url)
    with bsg_api.ApiClient(config) as client:
        config.access_token = bsg_api.AuthApi(client).login(bsg_api.LoginRequest(api_key=demo.api_key)).bearer
        page = bsg_api.MessagesSMSApi(client).get_messages(page_limit=15)
    assert page.data is not None
    assert {m.phone: m.status.value if m.status else None for m in page.data} == {
        phone: status for phone, (status, _) in expected.items()
    }
