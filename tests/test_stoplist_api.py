"""/api/stoplist over HTTP: one entry per phone with a flag per list, ids that map back to phones, limits,
search, isolation, and the send path honouring what the API put on the RCS list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from conftest import LiveServer
from rcsgate.services import stoplist
from rcsgate.services.demo import ensure_demo


def client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"X-API-KEY": key}, timeout=10)


@pytest.fixture
def api(server: LiveServer) -> httpx.Client:
    _, key = server.new_account()
    return client(server, key)


def ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()


def entry(phone: int, *types: str, at: str = "2026-01-01 12:00:00") -> dict[str, Any]:
    return {
        "id": phone,
        "phone": phone,
        "created_at": at,
        "sms_stoplist": "sms" in types,
        "viber_stoplist": "viber" in types,
        "rcs_stoplist": "rcs" in types,
        "whatsapp_stoplist": "whatsapp" in types,
    }


def test_attach_answers_each_phone_with_its_lists(server: LiveServer, api: httpx.Client) -> None:
    r = api.post("/api/stoplist/attach", json={"phones": [380661231231, "+380661231232"], "types": ["sms"]})
    assert ok(r) == {"data": [entry(380661231231, "sms"), entry(380661231232, "sms")]}
    server.clock.advance(timedelta(hours=1))
    # Repeats in the request are dropped; an existing entry keeps its first time and gains the new list.
    body = {"phones": [380661231231, 380661231231, 48601234567], "types": ["rcs", "viber", "rcs"]}
    assert ok(api.post("/api/stoplist/attach", json=body)) == {
        "data": [
            entry(380661231231, "sms", "rcs", "viber"),
            entry(48601234567, "rcs", "viber", at="2026-01-01 13:00:00"),
        ]
    }


def test_listing_pages_filters_and_counts_phones_once(api: httpx.Client) -> None:
    phones = [380661230000 + n for n in range(30)]
    ok(api.post("/api/stoplist/attach", json={"phones": phones[:20], "types": ["sms", "rcs"]}))
    ok(api.post("/api/stoplist/attach", json={"phones": phones[10:], "types": ["whatsapp"]}))
    ok(api.post("/api/stoplist/attach", json={"phones": [123456789], "types": ["viber"]}))

    everything = ok(api.get("/api/stoplist"))
    assert everything["total"] == 31
    # Ordered by id, that is numerically by phone (a 9-digit number before the 12-digit ones).
    assert [e["id"] for e in everything["data"]] == [123456789, *phones]
    assert everything["data"][15] == entry(phones[14], "sms", "rcs", "whatsapp")
    page = ok(api.get("/api/stoplist", params={"page[limit]": 15, "page[offset]": 15}))
    assert page["total"] == 31 and [e["id"] for e in page["data"]] == phones[14:29]
    whatsapp = ok(api.get("/api/stoplist", params={"type": "whatsapp", "page[limit]": 15}))
    assert whatsapp["total"] == 20 and [e["id"] for e in whatsapp["data"]] == phones[10:25]
    assert whatsapp["data"][0] == entry(phones[10], "sms", "rcs", "whatsapp")
    assert ok(api.get("/api/stoplist", params={"type": "viber"}))["data"] == [entry(123456789, "viber")]
    for bad in ({"type": "fax"}, {"page[limit]": 14}, {"page[limit]": 501}, {"page[offset]": -1}):
        r = api.get("/api/stoplist", params=bad)
        assert r.status_code == 422 and list(r.json()["errors"]) == list(bad), bad


def test_detach_by_id_or_phone(api: httpx.Client) -> None:
    ok(
        api.post(
            "/api/stoplist/attach", json={"phones": [380661231231, 380661231232], "types": ["sms", "rcs"]}
        )
    )
    assert ok(api.post("/api/stoplist/detach", json={"ids": [380661231231], "types": ["sms"]})) == {}
    assert ok(api.get("/api/stoplist"))["data"] == [
        entry(380661231231, "rcs"),
        entry(380661231232, "sms", "rcs"),
    ]
    # Detaching what is not there is fine; an entry off every list is gone.
    body = {"ids": [380661231231], "phones": ["380661231232"], "types": ["sms", "rcs", "viber"]}
    assert ok(api.post("/api/stoplist/detach", json=body)) == {}
    assert ok(api.post("/api/stoplist/detach", json=body)) == {}
    assert ok(api.get("/api/stoplist")) == {"data": [], "total": 0}


def test_request_rules(api: httpx.Client) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("attach", {"phones": list(range(380661230000, 380661231001)), "types": ["sms"]}, "phones"),
        ("attach", {"phones": [380661230000], "types": []}, "types"),
        ("attach", {"phones": [380661230000]}, "types"),
        ("attach", {"phones": [380661230000], "types": ["fax"]}, "types.0"),
        ("attach", {"phones": [380661230000, 12345], "types": ["sms"]}, "phones.1"),
        ("attach", {"phones": ["0661230000"], "types": ["sms"]}, "phones.0"),
        ("attach", {"phones": [], "types": ["sms"]}, "phones"),
        ("detach", {"ids": list(range(380661230000, 380661230201)), "types": ["sms"]}, "ids"),
        ("detach", {"ids": [], "types": ["sms"]}, "ids"),
        ("detach", {"ids": [5], "types": ["sms"]}, "ids.0"),
        ("detach", {"ids": [380661230000], "types": ["email"]}, "types.0"),
    ]
    for action, body, field in cases:
        r = api.post(f"/api/stoplist/{action}", json=body)
        assert r.status_code == 422, (action, body)
        assert field in r.json()["errors"], (action, body, r.json())
    ok(
        api.post(
            "/api/stoplist/attach", json={"phones": list(range(380661230000, 380661231000)), "types": ["sms"]}
        )
    )
    assert ok(api.get("/api/stoplist"))["total"] == 1000
    ok(
        api.post(
            "/api/stoplist/detach", json={"ids": list(range(380661230000, 380661230200)), "types": ["sms"]}
        )
    )
    assert ok(api.get("/api/stoplist"))["total"] == 800


def test_existing_service_functions_and_the_api_agree(server: LiveServer) -> None:
    account_id, key = server.new_account()
    api = client(server, key)
    server.call(
        lambda db: stoplist.attach(
            db, server.clock, account_id=account_id, phones=["+380661230001"], list_type="rcs"
        )
    )
    assert ok(api.get("/api/stoplist"))["data"] == [entry(380661230001, "rcs")]
    server.call(
        lambda db: stoplist.detach(db, account_id=account_id, phones=["380661230001"], list_type="rcs")
    )
    assert ok(api.get("/api/stoplist"))["total"] == 0


def test_search(server: LiveServer, api: httpx.Client) -> None:
    ok(api.post("/api/stoplist/attach", json={"phones": [380661230001, 380661230002], "types": ["sms"]}))
    server.clock.advance(timedelta(days=1))
    ok(api.post("/api/stoplist/attach", json={"phones": [380661230002, 48601234567], "types": ["rcs"]}))
    group = api.post("/api/groups", json={"name": "Stop group"}).json()["data"]["id"]
    contact = api.post("/api/contacts", json={"phone": 380661230002, "groups": [group]}).json()["data"]["id"]
    assert contact

    def search(field: str, operator: str, value: str, **more: Any) -> list[int]:
        params = {"search[field]": field, "search[operator]": operator, "search[value]": value, **more}
        return [e["id"] for e in ok(api.get("/api/stoplist/search", params=params))["data"]]

    assert search("type", "=", "rcs") == [48601234567, 380661230002]
    assert search("phone", "like", "0661") == [380661230001, 380661230002]
    assert search("phone", "=", "48601234567") == [48601234567]
    assert search("id", ">", "48601234567") == [380661230001, 380661230002]
    assert search("created_at", "=", "2026-01-01") == [380661230001, 380661230002]
    assert search("created_at", ">=", "2026-01-02") == [48601234567, 380661230002]
    assert search("type", "=", "sms", way="desc") == [380661230002, 380661230001]
    assert search("type", "=", "sms", contact_group_id=str(group)) == [380661230002]
    # Every criterion must hold for one entry: phone 380661230001 was put on sms only, on day one.
    both = {"search_fields[0][field]": "type", "search_fields[0][value]": "rcs"}
    assert search("created_at", "<", "2026-01-02", **both) == []
    r = ok(api.get("/api/stoplist/search", params={"search[field]": "type", "search[value]": "sms"}))
    assert r["meta"] == {
        "page": {"total": 2, "offset": 0, "limit": 50},
        "search": {"field": "type", "operator": "=", "value": "sms"},
    }
    assert r["data"][1] == entry(380661230002, "sms", "rcs")
    for params in (
        {"search[field]": "type", "search[value]": "fax"},
        {"search[field]": "type", "search[operator]": "like", "search[value]": "s"},
        {"search[field]": "name", "search[value]": "x"},
        {"search[field]": "id", "search[value]": "x"},
    ):
        assert api.get("/api/stoplist/search", params=params).status_code == 422, params


def test_accounts_have_their_own_stop_lists(server: LiveServer) -> None:
    _, a_key = server.new_account("a")
    _, b_key = server.new_account("b")
    a, b = client(server, a_key), client(server, b_key)
    ok(a.post("/api/stoplist/attach", json={"phones": [380661230001], "types": ["sms", "rcs"]}))
    assert ok(b.get("/api/stoplist")) == {"data": [], "total": 0}
    assert (
        ok(b.get("/api/stoplist/search", params={"search[field]": "phone", "search[value]": "380661230001"}))[
            "data"
        ]
        == []
    )
    # B detaching A's entry id touches nothing of A's; B's own attach of the same phone is its own.
    ok(b.post("/api/stoplist/detach", json={"ids": [380661230001], "types": ["sms", "rcs"]}))
    assert ok(b.post("/api/stoplist/attach", json={"phones": [380661230001], "types": ["viber"]}))[
        "data"
    ] == [entry(380661230001, "viber")]
    assert ok(a.get("/api/stoplist"))["data"] == [entry(380661230001, "sms", "rcs")]


def test_the_send_path_honours_the_rcs_stop_list_set_through_the_api(server: LiveServer) -> None:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    api = client(server, demo.api_key)
    ok(api.post("/api/stoplist/attach", json={"phones": [380661230001], "types": ["rcs"]}))
    body = {"phone": {"number": "380661230001"}, "sender": "demo_agent", "options": {"text": "Hello"}}
    assert ok(api.post("/api/messages/rcs/send", json=body))["data"]["status"] == "failed"
    ok(api.post("/api/stoplist/detach", json={"ids": [380661230001], "types": ["rcs"]}))
    body["options"] = {"text": "Hello again"}
    assert ok(api.post("/api/messages/rcs/send", json=body))["data"]["status"] == "accepted"
    # The send added the recipient to the contact book (add_to_contact_book defaults to true).
    contacts = ok(api.get("/api/contacts"))["data"]
    assert [c["phone"] for c in contacts] == [380661230001]
