"""GET /api/messages filters, sorting, paging and period rules; test mode; account isolation."""

from __future__ import annotations

from datetime import timedelta

import httpx

from conftest import LiveServer
from rcsgate.services import auth, contacts, senders
from rcsgate.services.demo import ensure_demo


def body(phone: str, ref: str | None = None, **extra: object) -> dict[str, object]:
    return {
        "phone": {"number": phone, **({"reference_id": ref} if ref else {})},
        "sender": "demo_agent",
        "options": {"text": "hello"},
        **extra,
    }


def demo_client(server: LiveServer) -> httpx.Client:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    return server.client(headers={"X-API-KEY": demo.api_key})


def test_filters_sorting_paging(server: LiveServer) -> None:
    c = demo_client(server)
    ids = []
    for i, phone in enumerate(["380661230003", "380661230001", "380661230002"]):
        server.clock.advance(60)
        r = c.post("/api/messages/rcs/send", json=body(phone, f"r{i}"))
        assert r.status_code == 200, r.text
        ids.append(r.json()["data"]["id"])
    get = lambda **p: c.get("/api/messages", params=p)  # noqa: E731
    r = get()
    assert [m["id"] for m in r.json()["data"]] == ids and r.json()["meta"] == {
        "page": {"total": 3, "offset": 0, "limit": 50}
    }
    assert [m["id"] for m in get(way="desc").json()["data"]] == ids[::-1]
    assert [m["phone"] for m in get(sort="phone").json()["data"]] == [
        380661230001,
        380661230002,
        380661230003,
    ]
    assert [m["id"] for m in get(**{"filter[id]": ids[1]}).json()["data"]] == [ids[1]]
    assert [m["id"] for m in get(**{"filter[reference_id]": "r2"}).json()["data"]] == [ids[2]]
    assert get(**{"filter[campaign_id]": 5}).json()["meta"]["page"]["total"] == 0
    page = get(**{"page[limit]": 15, "page[offset]": 2}).json()
    assert [m["id"] for m in page["data"]] == [ids[2]] and page["meta"]["page"] == {
        "total": 3,
        "offset": 2,
        "limit": 15,
    }
    assert get(**{"filter[from]": "2026-01-01 12:01:30"}).json()["meta"]["page"]["total"] == 2
    assert get(**{"filter[to]": "2026-01-01 12:01:30"}).json()["meta"]["page"]["total"] == 1
    assert (
        get(**{"filter[from]": "2026-01-01T12:02:00", "filter[to]": "2026-01-01T12:02:00"}).json()["meta"][
            "page"
        ]["total"]
        == 1
    )
    for bad in (
        {"filter[to]": "2026-01-01 12:30:00"},  # the future
        {"filter[from]": "2026-01-01 12:30:00"},
        {"filter[from]": "2025-09-01 00:00:00"},  # more than 3 months before filter[to]
        {"filter[from]": "yesterday"},
        {"page[limit]": 14},
        {"page[limit]": 501},
        {"sort": "price"},
        {"way": "up"},
        {"filter[id]": 0},
    ):
        r = get(**bad)
        assert r.status_code == 422, bad
        assert r.json()["message"] == "The given data was invalid."
        assert set(r.json()["errors"]) <= set(bad), (bad, r.json())
    assert get(**{"page[limit]": 500}).status_code == 200


def test_messages_older_than_three_months_are_outside_the_default_period(server: LiveServer) -> None:
    c = demo_client(server)
    old = c.post("/api/messages/rcs/send", json=body("380661230001")).json()["data"]["id"]
    server.clock.advance(timedelta(days=93))
    new = c.post("/api/messages/rcs/send", json=body("380661230002")).json()["data"]["id"]
    assert [m["id"] for m in c.get("/api/messages").json()["data"]] == [new]
    assert old < new


def test_other_accounts_messages_are_invisible(server: LiveServer) -> None:
    c = demo_client(server)
    mine = c.post("/api/messages/rcs/send", json=body("380661230001", "mine")).json()["data"]["id"]
    _, other_key = server.new_account("other")
    with server.client(headers={"X-API-KEY": other_key}) as o:
        assert o.get("/api/messages").json() == {
            "data": [],
            "meta": {"page": {"total": 0, "offset": 0, "limit": 50}},
        }
        assert o.get("/api/messages", params={"filter[id]": mine}).json()["data"] == []
        assert o.get("/api/messages", params={"filter[reference_id]": "mine"}).json()["data"] == []
        # Another account's agent name is not usable either.
        r = o.post("/api/messages/rcs/send", json=body("380661230001"))
        assert r.status_code == 422 and "sender" in r.json()["errors"]


def test_test_mode_sends_only_via_the_test_agent_to_verified_contacts(server: LiveServer) -> None:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    account_id = demo.account_id
    server.call(
        lambda db: senders.create_agent(
            db, server.clock, account_id=account_id, name="test_agent", country="UA", is_test=True
        )
    )
    test_key = server.call(
        lambda db: auth.create_key(db, server.clock, account_id=account_id, mode="test")
    ).key
    with server.client(headers={"X-API-KEY": test_key}) as t:
        r = t.post("/api/messages/rcs/send", json={**body("380661230001"), "sender": "test_agent"})
        assert r.status_code == 422 and "phone.number" in r.json()["errors"]
        server.call(
            lambda db: contacts.verify(db, server.clock, account_id=account_id, phone="+380661230001")
        )
        r = t.post("/api/messages/rcs/send", json={**body("380661230001"), "sender": "test_agent"})
        assert r.status_code == 200, r.text
        # The live agent is not for test mode ...
        r = t.post("/api/messages/rcs/send", json=body("380661230001", "x2"))
        assert r.status_code == 422 and "sender" in r.json()["errors"]
    # ... and the test agent is not for live keys.
    with server.client(headers={"X-API-KEY": demo.api_key}) as live:
        r = live.post("/api/messages/rcs/send", json={**body("380661230002"), "sender": "test_agent"})
        assert r.status_code == 422 and "sender" in r.json()["errors"]


def test_tariff_code_selects_a_tariff_of_the_account(server: LiveServer) -> None:
    c = demo_client(server)
    r = c.post("/api/messages/rcs/send", json=body("380661230001", tariff_code=99))
    assert r.status_code == 422 and r.json() == {"message": "Tariff was not found", "errors": {}}
    r = c.post("/api/messages/rcs/send", json=body("380661230001", tariff_code=1))
    assert r.status_code == 200 and r.json()["data"]["amount"]["value"] == "0.0200000"


def test_add_to_contact_book(server: LiveServer) -> None:
    c = demo_client(server)
    c.post("/api/messages/rcs/send", json=body("380661230001"))
    c.post("/api/messages/rcs/send", json=body("380661230002", add_to_contact_book="false"))
    c.post("/api/messages/rcs/send", json=body("380661230001", "again"))

    async def phones(db):  # type: ignore[no-untyped-def]
        from sqlalchemy import select

        from rcsgate.store.tables import contacts as table

        async with db.read() as conn:
            return [r.phone for r in await conn.execute(select(table.c.phone).order_by(table.c.phone))]

    assert server.call(phones) == ["380661230001"]
