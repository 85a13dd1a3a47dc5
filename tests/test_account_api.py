"""Balance, tariffs and senders endpoints, and account isolation."""

from __future__ import annotations

from conftest import LiveServer
from rcsgate.services import accounts, senders, tariffs


def test_balance_shows_balance_currency_and_credit(server: LiveServer) -> None:
    account_id, key = server.new_account(balance="12.3456789")
    server.call(lambda db: accounts.set_credit_limit(db, account_id=account_id, credit_limit="5"))
    with server.client(headers={"X-API-KEY": key}) as c:
        r = c.get("/api/accounts/balance")
    assert r.status_code == 200
    assert r.json() == {"data": {"balance": 12.3456789, "currency": "EUR", "credit": 5.0}}


def test_tariffs_list_the_system_default_then_the_accounts_own(server: LiveServer) -> None:
    account_id, key = server.new_account()
    server.call(lambda db: tariffs.create_tariff(db, server.clock, code=1, name="Default", is_default=True))
    server.call(lambda db: tariffs.create_tariff(db, server.clock, code=7, name="VIP"))
    with server.client(headers={"X-API-KEY": key}) as c:
        r = c.get("/api/accounts/tariff")
        assert r.status_code == 200
        assert r.json() == {
            "data": [{"id": 1, "name": "Default", "code": 1, "is_active": True, "is_default": True}],
            "total": 1,
        }
        server.call(lambda db: tariffs.assign_tariff(db, account_id=account_id, code=7, is_default=True))
        server.call(lambda db: tariffs.assign_tariff(db, account_id=account_id, code=1))
        r = c.get("/api/accounts/tariff")
        data = r.json()["data"]
        assert [(t["code"], t["is_default"]) for t in data] == [(1, False), (7, True)]
        assert r.json()["total"] == 2


def test_tariff_paging_and_limits(server: LiveServer) -> None:
    account_id, key = server.new_account()
    for code in range(1, 21):
        server.call(lambda db, code=code: tariffs.create_tariff(db, server.clock, code=code, name=f"T{code}"))
        server.call(lambda db, code=code: tariffs.assign_tariff(db, account_id=account_id, code=code))
    with server.client(headers={"X-API-KEY": key}) as c:
        r = c.get("/api/accounts/tariff", params={"page[limit]": 15, "page[offset]": 15})
        assert r.status_code == 200
        assert [t["code"] for t in r.json()["data"]] == [16, 17, 18, 19, 20]
        assert r.json()["total"] == 20
        for bad in ({"page[limit]": 14}, {"page[limit]": 501}, {"page[offset]": -1}, {"page[limit]": "x"}):
            r = c.get("/api/accounts/tariff", params=bad)
            assert r.status_code == 422, bad
            assert r.json()["message"] == "The given data was invalid."
            assert list(r.json()["errors"]) == list(bad)
        assert c.get("/api/accounts/tariff", params={"page[limit]": 500}).status_code == 200


def test_senders_sms_and_rcs(server: LiveServer) -> None:
    account_id, key = server.new_account()
    server.call(
        lambda db: senders.create_sender(
            db, server.clock, account_id=account_id, name="Acme", is_default=True
        )
    )
    server.call(
        lambda db: senders.create_agent(
            db, server.clock, account_id=account_id, name="acme_agent", country="pl"
        )
    )
    with server.client(headers={"X-API-KEY": key}) as c:
        sms = c.get("/api/senders", params={"type": "sms"}).json()
        assert sms["total"] == 1
        assert sms["data"][0] | {"created_at": "x"} == {
            "id": sms["data"][0]["id"],
            "status": "active",
            "country": None,
            "sender": "Acme",
            "created_at": "x",
            "is_default": True,
        }
        assert sms["data"][0]["created_at"] == "2026-01-01 12:00:00"
        rcs = c.get("/api/senders", params={"type": "rcs"}).json()
        assert [(a["sender"], a["country"], a["status"]) for a in rcs["data"]] == [
            ("acme_agent", "PL", "active")
        ]
        assert c.get("/api/senders", params={"type": "viber"}).json() == {"data": [], "total": 0}
        r = c.get("/api/senders", params={"type": "fax"})
        assert r.status_code == 422 and "type" in r.json()["errors"]


def test_accounts_see_only_their_own_data(server: LiveServer) -> None:
    a_id, a_key = server.new_account("a", balance="1")
    b_id, b_key = server.new_account("b", balance="2")
    server.call(lambda db: senders.create_sender(db, server.clock, account_id=a_id, name="OnlyA"))
    server.call(
        lambda db: senders.create_agent(db, server.clock, account_id=a_id, name="agent_a", country="UA")
    )
    with server.client(headers={"X-API-KEY": b_key}) as c:
        assert c.get("/api/accounts/balance").json()["data"]["balance"] == 2.0
        assert c.get("/api/senders", params={"type": "sms"}).json() == {"data": [], "total": 0}
        assert c.get("/api/senders", params={"type": "rcs"}).json() == {"data": [], "total": 0}
    with server.client(headers={"X-API-KEY": a_key}) as c:
        assert c.get("/api/accounts/balance").json()["data"]["balance"] == 1.0
        assert c.get("/api/senders", params={"type": "sms"}).json()["total"] == 1
    assert a_id != b_id


def test_timestamps_follow_the_account_time_zone(server: LiveServer) -> None:
    async def make(db):  # type: ignore[no-untyped-def]
        from rcsgate.services import auth

        account = await accounts.create_account(db, server.clock, name="kyiv", timezone="Europe/Kyiv")
        await senders.create_sender(db, server.clock, account_id=account.id, name="Kyiv")
        return (await auth.create_key(db, server.clock, account_id=account.id)).key

    key = server.call(make)
    with server.client(headers={"X-API-KEY": key}) as c:
        # The server clock stands at 2026-01-01 12:00 UTC; Kyiv is UTC+2 in winter.
        assert (
            c.get("/api/senders", params={"type": "sms"}).json()["data"][0]["created_at"]
            == "2026-01-01 14:00:00"
        )
