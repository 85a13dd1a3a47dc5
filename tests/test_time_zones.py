"""Every timestamp without an offset is read in the account's time zone and shown back the same:
campaign `start_at` (its limits and their messages included), `filter[from]`/`filter[to]`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from conftest import LiveServer
from rcsgate.clock import ManualClock
from rcsgate.services import accounts, auth, senders
from rcsgate.services.demo import ensure_demo

ZONE = "America/Los_Angeles"  # UTC-8 in January
# 02:00 UTC on 1 January is 18:00 on 31 December in Los Angeles: the two calendars disagree on "today".
NOW = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def api(server_factory: Callable[..., LiveServer]) -> httpx.Client:
    server = server_factory(clock=ManualClock(NOW))

    async def make(db: Any) -> str:
        await ensure_demo(db, server.clock, var_dir=server.settings.var_dir)  # the default tariff
        account = await accounts.create_account(db, server.clock, name="la", timezone=ZONE)
        await accounts.topup(db, server.clock, account_id=account.id, amount="100")
        await senders.create_agent(
            db, server.clock, account_id=account.id, name="agent", country="UA", status="active"
        )
        return (await auth.create_key(db, server.clock, account_id=account.id)).key

    key = server.call(make)
    return httpx.Client(base_url=server.base_url, headers={"X-API-KEY": key}, timeout=10)


def _campaign(api: httpx.Client, start_at: str, n: int) -> httpx.Response:
    body = {
        "phones": [{"number": f"3806612{n:05d}"}],
        "sender": "agent",
        "options": {"text": "Hi"},
        "start_at": start_at,
    }
    return api.post("/api/campaigns/rcs/send", json=body)


def test_start_at_without_offset_is_the_accounts_wall_time(api: httpx.Client) -> None:
    spellings = [
        ("2026-01-02 10:00:00", "2026-01-02 10:00:00"),  # the pages' format: the account's zone
        ("2026-01-02T10:00:00", "2026-01-02 10:00:00"),  # the official client's naive datetime
        ("2026-01-02T10:00:00.5", "2026-01-02 10:00:00"),
        ("2026-01-02T18:00:00Z", "2026-01-02 10:00:00"),  # with an offset: that moment
        ("2026-01-02T19:00:00+01:00", "2026-01-02 10:00:00"),
    ]
    for n, (sent, shown) in enumerate(spellings):
        r = _campaign(api, sent, n)
        assert r.status_code == 200, (sent, r.text)
        campaign = r.json()["data"]
        assert (campaign["status"], campaign["start_at"]) == ("scheduled", shown), sent
        again = api.get(f"/api/campaigns/{campaign['id']}").json()["data"]
        assert again["start_at"] == shown


def test_start_at_limits_are_the_accounts_days(api: httpx.Client) -> None:
    # Now is 2025-12-31 18:00:00 there: not before it, and at most 23:59:59 there of the 30th day.
    assert _campaign(api, "2025-12-31 18:00:00", 1).status_code == 200
    assert _campaign(api, "2026-01-29 23:59:59", 2).status_code == 200
    r = _campaign(api, "2025-12-31 17:59:59", 3)
    assert r.json()["errors"] == {"start_at": ["The start at must be a date after or equal to now."]}
    r = _campaign(api, "2026-01-30 00:00:00", 4)
    assert r.status_code == 422
    assert r.json()["errors"] == {
        "start_at": ["The start at must be a date before or equal to 2026-01-29 23:59:59."]
    }
    # The same limit given with an offset.
    assert _campaign(api, "2026-01-30T07:59:59Z", 5).status_code == 200
    assert _campaign(api, "2026-01-30T08:00:00Z", 6).status_code == 422


def test_filters_read_in_the_accounts_zone(api: httpx.Client) -> None:
    body = {"phone": {"number": "380661299999"}, "sender": "agent", "options": {"text": "Hi"}}
    sent = api.post("/api/messages/rcs/send", json=body).json()["data"]
    created = sent["created_at"]
    assert created == "2025-12-31 18:00:00"

    def ids(path: str, **params: str) -> list[int]:
        r = api.get(path, params=params)
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["data"]]

    assert ids("/api/messages", **{"filter[from]": created}) == [sent["id"]]
    assert ids("/api/messages", **{"filter[from]": created, "filter[to]": created}) == [sent["id"]]
    assert ids("/api/messages", **{"filter[to]": "2025-12-31 17:59:59"}) == []
    assert ids("/api/messages", **{"filter[from]": "2026-01-01T02:00:00Z"}) == [sent["id"]]
    campaign = _campaign(api, "2026-01-02 10:00:00", 7).json()["data"]
    assert campaign["created_at"] == created
    assert ids("/api/campaigns", **{"filter[from]": created, "filter[to]": created}) == [campaign["id"]]
    assert ids("/api/campaigns", **{"filter[to]": "2025-12-31 17:59:59"}) == []
