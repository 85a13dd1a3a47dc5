"""/api/contacts and /api/groups over HTTP: shapes, rules, limits, exact counts, search, account isolation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from conftest import LiveServer
from rcsgate.services import accounts, auth, contacts, stoplist

DUPLICATE = "Phone number is already exist in contact book"


class Book:
    """An account's view of the contact book through HTTP."""

    def __init__(self, server: LiveServer, key: str) -> None:
        self.c = httpx.Client(base_url=server.base_url, headers={"X-API-KEY": key}, timeout=10)

    def ok(self, r: httpx.Response, status: int = 200) -> Any:
        assert r.status_code == status, r.text
        return r.json() if r.content else None

    def contact(self, phone: int | str, **extra: Any) -> dict[str, Any]:
        return dict(self.ok(self.c.post("/api/contacts", json={"phone": phone, **extra}), 201)["data"])

    def group(self, name: str, **extra: Any) -> dict[str, Any]:
        return dict(self.ok(self.c.post("/api/groups", json={"name": name, **extra}), 201)["data"])

    def get_group(self, group_id: int) -> dict[str, Any]:
        return dict(self.ok(self.c.get(f"/api/groups/{group_id}"))["data"])

    def counts(self, group_id: int) -> tuple[int, int]:
        g = self.get_group(group_id)
        return g["items"], g["stop_list_count"]

    def attach(self, contacts: list[int], groups: list[int]) -> httpx.Response:
        return self.c.post("/api/groups/attach", json={"contacts": contacts, "groups": groups})

    def detach(self, contacts: list[int], groups: list[int]) -> httpx.Response:
        return self.c.post("/api/groups/detach", json={"contacts": contacts, "groups": groups})

    def phones(self, path: str = "/api/contacts", **params: Any) -> list[int]:
        return [c["phone"] for c in self.ok(self.c.get(path, params=params))["data"]]


@pytest.fixture
def book(server: LiveServer) -> Book:
    _, key = server.new_account()
    return Book(server, key)


def phone(n: int) -> int:
    return 380661230000 + n


# ------------------------------------------------------------------ contacts


def test_contact_crud_shapes(server: LiveServer, book: Book) -> None:
    g = book.group("Leads", description="crm leads 2025 export")
    created = book.contact(phone(1), fields=[{"id": 388077, "value": "Zufafa"}], groups=[g["id"]])
    assert created == {
        "id": created["id"],
        "phone": phone(1),
        "fields": [{"388077": "Zufafa"}],
        "groups": [
            {
                "id": g["id"],
                "name": "Leads",
                "description": "crm leads 2025 export",
                "default": False,
                "created_at": "2026-01-01 12:00:00",
                "items": 1,
                "stop_list_count": 0,
            }
        ],
        "hlr_status": "unknown",
        "hlr_last_check": None,
        "created_at": "2026-01-01 12:00:00",
    }
    path = f"/api/contacts/{created['id']}"
    assert book.ok(book.c.get(path))["data"] == created

    other = book.group("Other")
    body = {
        "phone": str(phone(2)),
        "fields": [{"id": 1, "value": "a"}, {"id": 2, "value": 7}],
        "groups": [other["id"]],
    }
    updated = book.ok(book.c.put(path, json=body))["data"]
    assert updated["phone"] == phone(2)
    assert updated["fields"] == [{"1": "a"}, {"2": "7"}]
    assert [x["id"] for x in updated["groups"]] == [other["id"]]
    assert book.counts(g["id"]) == (0, 0)

    # Fields and groups left out (or null) stay as they are.
    kept = book.ok(book.c.put(path, json={"phone": phone(2), "fields": None}))["data"]
    assert kept["fields"] == updated["fields"] and kept["groups"] == updated["groups"]
    cleared = book.ok(book.c.put(path, json={"phone": phone(2), "fields": [], "groups": []}))["data"]
    assert cleared["fields"] == [] and cleared["groups"] == []

    assert book.c.delete(path).status_code == 204
    for r in (book.c.get(path), book.c.put(path, json={"phone": phone(3)}), book.c.delete(path)):
        assert r.status_code == 404
        assert r.json() == {"message": "Invalid contact id", "errors": {}}


def test_a_new_phone_starts_unverified(server: LiveServer) -> None:
    account_id, key = server.new_account()
    book = Book(server, key)
    server.call(lambda db: contacts.verify(db, server.clock, account_id=account_id, phone=str(phone(1))))
    c = book.ok(book.c.get("/api/contacts"))["data"][0]
    assert c["phone"] == phone(1)

    async def verified(db, number):  # type: ignore[no-untyped-def]
        async with db.read() as conn:
            return await contacts.is_verified(conn, account_id=account_id, phone=str(number))

    book.ok(
        book.c.put(f"/api/contacts/{c['id']}", json={"phone": phone(1), "fields": [{"id": 1, "value": "x"}]})
    )
    assert server.call(lambda db: verified(db, phone(1)))
    # Test mode may message only verified numbers: editing a verified contact must not verify another number.
    book.ok(book.c.put(f"/api/contacts/{c['id']}", json={"phone": phone(2)}))
    assert not server.call(lambda db: verified(db, phone(2)))


def test_contact_groups_accept_ids_or_objects(book: Book) -> None:
    g1, g2 = book.group("One"), book.group("Two")
    c = book.contact(phone(1), groups=[{"id": g1["id"], "default": False}, str(g2["id"]), g1["id"]])
    assert [x["id"] for x in c["groups"]] == [g1["id"], g2["id"]]


def test_duplicate_phone_is_422_in_message_and_errors_phone(book: Book) -> None:
    first = book.contact(phone(1))
    second = book.contact(phone(2))
    expected = {"message": DUPLICATE, "errors": {"phone": [DUPLICATE]}}
    for again in (phone(1), str(phone(1)), f"+{phone(1)}"):
        r = book.c.post("/api/contacts", json={"phone": again})
        assert (r.status_code, r.json()) == (422, expected)
    r = book.c.put(f"/api/contacts/{second['id']}", json={"phone": phone(1)})
    assert (r.status_code, r.json()) == (422, expected)
    # Keeping one's own phone is no conflict.
    assert book.c.put(f"/api/contacts/{first['id']}", json={"phone": phone(1)}).status_code == 200
    assert book.ok(book.c.get("/api/contacts"))["total"] == 2


@pytest.mark.parametrize(
    "bad", [None, True, "", "12345678", "0380661230001", "3806612300011234", "38066123x001", 1.5]
)
def test_bad_phone_is_422(book: Book, bad: Any) -> None:
    r = book.c.post("/api/contacts", json={"phone": bad})
    assert r.status_code == 422
    assert "phone" in r.json()["errors"]
    if bad not in (None, ""):
        assert r.json()["message"] == "Invalid phone number format"


def test_field_and_group_rules(book: Book) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"fields": [{"id": 1, "value": "x" * 256}]}, "fields.0.value"),
        ({"fields": [{"id": 1, "value": "a"}, {"id": 1, "value": "b"}]}, "fields.1.id"),
        ({"fields": [{"id": 0, "value": "a"}]}, "fields.0.id"),
        ({"fields": [{"value": "a"}]}, "fields.0.id"),
        ({"fields": "x"}, "fields"),
        ({"groups": [999]}, "groups.0"),
        ({"groups": ["abc"]}, "groups.0"),
        ({"groups": list(range(1, 102))}, "groups"),
    ]
    for extra, field in cases:
        r = book.c.post("/api/contacts", json={"phone": phone(1), **extra})
        assert r.status_code == 422, extra
        assert field in r.json()["errors"], (extra, r.json())
    assert book.ok(book.c.get("/api/contacts"))["total"] == 0
    r = book.c.post("/api/contacts", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"] == {"body": ["The request body is not valid JSON."]}


def test_list_paging_and_groups_filter(book: Book) -> None:
    ids = [book.contact(phone(n))["id"] for n in range(40)]
    g1, g2 = book.group("Group 1"), book.group("Group 2")
    book.ok(book.attach(ids[:10], [g1["id"]]))
    book.ok(book.attach(ids[5:15], [g2["id"]]))

    page = book.ok(book.c.get("/api/contacts", params={"page[limit]": 15, "page[offset]": 30}))
    assert page["total"] == 40 and [c["id"] for c in page["data"]] == ids[30:]
    assert len(book.ok(book.c.get("/api/contacts"))["data"]) == 40  # default limit 50
    both = book.ok(book.c.get("/api/contacts", params={"groups[]": [g1["id"], g2["id"]]}))
    assert both["total"] == 15 and [c["id"] for c in both["data"]] == ids[:15]
    only = book.ok(
        book.c.get("/api/contacts", params={"groups[]": [g2["id"]], "page[limit]": 15, "page[offset]": 5})
    )
    assert only["total"] == 10 and [c["id"] for c in only["data"]] == ids[10:15]
    for bad in ({"page[limit]": 14}, {"page[limit]": 501}, {"page[offset]": -1}, {"groups[]": "x"}):
        r = book.c.get("/api/contacts", params=bad)
        assert r.status_code == 422 and next(iter(r.json()["errors"])).startswith(next(iter(bad))), bad


def test_contact_search(server: LiveServer, book: Book) -> None:
    g = book.group("Search")
    a = book.contact(380661230001, fields=[{"id": 7, "value": "Ilya Muromets"}], groups=[g["id"]])
    server.clock.advance(timedelta(days=1))
    b = book.contact(48601234567, fields=[{"id": 7, "value": "Alesha"}, {"id": 8, "value": "50"}])
    c = book.contact(380971443455)

    def found(**params: Any) -> list[int]:
        r = book.c.get("/api/contacts/search", params=params)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["data"]]

    def search(field: str, operator: str, value: str, **more: Any) -> list[int]:
        return found(**{"search[field]": field, "search[operator]": operator, "search[value]": value}, **more)

    assert search("phone", "=", "380661230001") == [a["id"]]
    assert search("phone", "=", "+380661230001") == [a["id"]]
    assert search("phone", "like", "38066") == [a["id"]]
    assert search("phone", "like", "0") == [a["id"], b["id"], c["id"]]
    assert search("id", ">", str(a["id"])) == [b["id"], c["id"]]
    assert search("id", "<=", str(b["id"])) == [a["id"], b["id"]]
    assert search("group_id", "=", str(g["id"])) == [a["id"]]
    assert search("7", "like", "MUROM") == [a["id"]]
    assert search("7", "=", "Alesha") == [b["id"]]
    assert search("8", "=", "50") == [b["id"]]
    assert search("7", "like", "%") == []  # a literal percent sign, not a wildcard
    assert search("created_at", "=", "2026-01-01") == [a["id"]]
    assert search("date", ">=", "2026-01-02") == [b["id"], c["id"]]
    assert search("created_at", "<", "2026-01-02 12:00:00") == [a["id"]]
    assert search("created_at", "<=", "2026-01-02 12:00:00") == [a["id"], b["id"], c["id"]]
    assert search("created_at", ">", "2026-01-01") == [b["id"], c["id"]]
    assert found(sort="phone", way="desc") == [c["id"], a["id"], b["id"]]
    assert found(sort="phone") == [b["id"], a["id"], c["id"]]
    both = {
        "search[field]": "phone",
        "search[operator]": "like",
        "search[value]": "380",
        "search_fields[0][field]": "7",
        "search_fields[0][operator]": "like",
        "search_fields[0][value]": "ilya",
    }
    assert found(**both) == [a["id"]]

    r = book.c.get("/api/contacts/search", params={"search[field]": "phone", "search[value]": "380661230001"})
    assert r.json()["meta"] == {
        "page": {"total": 1, "offset": 0, "limit": 50},
        "search": {"field": "phone", "operator": "=", "value": "380661230001"},
    }
    assert book.ok(book.c.get("/api/contacts/search"))["meta"]["search"] is None
    bad = [
        ({"search[field]": "nickname", "search[value]": "x"}, "search[field]"),
        ({"search[field]": "²", "search[value]": "x"}, "search[field]"),
        ({"search[field]": "0", "search[value]": "x"}, "search[field]"),
        ({"search[field]": "phone", "search[operator]": ">", "search[value]": "1"}, "search[operator]"),
        ({"search[field]": "phone", "search[operator]": "=", "search[value]": "abc"}, "search[value]"),
        ({"search[field]": "id", "search[operator]": "like", "search[value]": "1"}, "search[operator]"),
        ({"search[field]": "id", "search[value]": "one"}, "search[value]"),
        ({"search[field]": "created_at", "search[value]": "yesterday"}, "search[value]"),
        ({"search[field]": "phone"}, "search[value]"),
        (
            {
                "search_fields[2][field]": "7",
                "search_fields[2][operator]": "<",
                "search_fields[2][value]": "1",
            },
            "search_fields[2][operator]",
        ),
        ({"sort": "name"}, "sort"),
        ({"way": "up"}, "way"),
    ]
    for params, key in bad:
        r = book.c.get("/api/contacts/search", params=params)
        assert r.status_code == 422, params
        assert key in r.json()["errors"], (params, r.json())


def test_contact_search_dates_are_in_the_account_time_zone(server: LiveServer) -> None:
    async def make(db):  # type: ignore[no-untyped-def]
        account = await accounts.create_account(db, server.clock, name="kyiv", timezone="Europe/Kyiv")
        return (await auth.create_key(db, server.clock, account_id=account.id)).key

    book = Book(server, server.call(make))
    server.clock.advance(timedelta(hours=10, minutes=30))  # 22:30 UTC = 00:30 next day in Kyiv
    c = book.contact(phone(1))
    assert c["created_at"] == "2026-01-02 00:30:00"
    params = {"search[field]": "created_at", "search[operator]": "="}
    assert book.phones("/api/contacts/search", **params, **{"search[value]": "2026-01-02"}) == [phone(1)]
    assert book.phones("/api/contacts/search", **params, **{"search[value]": "2026-01-01"}) == []
    assert book.phones("/api/contacts/search", **params, **{"search[value]": "2026-01-02 00:30:00"}) == [
        phone(1)
    ]


def test_bulk_delete(book: Book) -> None:
    ids = [book.contact(phone(n))["id"] for n in range(6)]
    g = book.group("Doomed")
    book.ok(book.attach(ids[2:4], [g["id"]]))

    r = book.c.post(
        "/api/contacts/delete", params={"contact_ids[]": [ids[0], 999999], "group_ids[]": [888888]}
    )
    assert r.status_code == 422
    assert r.json()["errors"] == {
        "contact_ids.1": ["Contact 999999 was not found."],
        "group_ids.0": ["Contact list 888888 was not found."],
    }
    assert book.ok(book.c.get("/api/contacts"))["total"] == 6  # all or nothing

    r = book.c.post(
        "/api/contacts/delete", params={"contact_ids[]": [ids[0], ids[1]], "group_ids[]": [g["id"]]}
    )
    assert r.status_code == 204 and r.content == b""
    assert book.phones() == [phone(4), phone(5)]
    assert book.counts(g["id"]) == (0, 0)  # the list stays, empty
    assert book.c.post("/api/contacts/delete").status_code == 422


def test_bulk_delete_by_json_body_and_its_limit(book: Book) -> None:
    ids = [book.contact(phone(n))["id"] for n in range(3)]
    g = book.group("Body")
    book.ok(book.attach([ids[2]], [g["id"]]))
    r = book.c.post("/api/contacts/delete", json={"contact_ids": list(range(1, 5002))})
    assert r.status_code == 422
    assert r.json()["errors"] == {"contact_ids": ["The contact ids may not have more than 5000 items."]}
    # 5000 ids are fine (here: unknown ones, so nothing happens and each is named).
    r = book.c.post("/api/contacts/delete", json={"contact_ids": list(range(10_001, 15_001))})
    assert r.status_code == 422 and len(r.json()["errors"]) == 5000
    r = book.c.post("/api/contacts/delete", params={"contact_ids[]": ids[0]}, json={"group_ids": [g["id"]]})
    assert r.status_code == 204
    assert book.phones() == [phone(1)]


# ------------------------------------------------------------------ groups


def test_group_crud_and_rules(book: Book) -> None:
    g = book.group("List 1", description="crm leads", default=True)
    assert g == {
        "id": g["id"],
        "name": "List 1",
        "description": "crm leads",
        "default": True,
        "created_at": "2026-01-01 12:00:00",
        "items": 0,
        "stop_list_count": 0,
    }
    path = f"/api/groups/{g['id']}"
    assert book.ok(book.c.get(path))["data"] == g

    # Another default list takes the flag; names are unique ignoring case.
    h = book.group("List 2", is_default="true")
    assert h["default"] is True and book.get_group(g["id"])["default"] is False
    for r in (
        book.c.post("/api/groups", json={"name": "list 1"}),
        book.c.put(f"/api/groups/{h['id']}", json={"name": "LIST 1"}),
    ):
        assert r.status_code == 422
        assert r.json() == {
            "message": "Contact group is already exists",
            "errors": {"name": ["Contact group is already exists"]},
        }

    renamed = book.ok(book.c.put(path, json={"name": "List 1b"}))["data"]
    assert (renamed["name"], renamed["description"], renamed["default"]) == ("List 1b", "crm leads", False)
    kept = book.ok(book.c.put(path, json={"name": "List 1b", "description": None, "default": True}))["data"]
    assert kept["description"] == "crm leads" and kept["default"] is True
    cleared = book.ok(book.c.put(path, json={"name": "List 1b", "description": ""}))["data"]
    assert cleared["description"] is None and cleared["default"] is True

    for body, field in (
        ({"name": "ab"}, "name"),
        ({"name": "x" * 51}, "name"),
        ({}, "name"),
        ({"name": "Fine", "description": "d" * 256}, "description"),
        ({"name": "Fine", "default": "yes"}, "default"),
    ):
        r = book.c.post("/api/groups", json=body)
        assert r.status_code == 422 and field in r.json()["errors"], (body, r.json())

    c = book.contact(phone(1), groups=[g["id"]])
    assert book.c.delete(path).status_code == 204
    assert book.ok(book.c.get(f"/api/contacts/{c['id']}"))["data"]["groups"] == []  # contact stays
    for r in (book.c.get(path), book.c.put(path, json={"name": "Again"}), book.c.delete(path)):
        assert r.status_code == 404 and r.json()["message"] == "Contact group is not found"


def test_group_list_paging(book: Book) -> None:
    ids = [book.group(f"Group {n:02}")["id"] for n in range(20)]
    page = book.ok(book.c.get("/api/groups", params={"page[limit]": 15, "page[offset]": 15}))
    assert page["total"] == 20 and [g["id"] for g in page["data"]] == ids[15:]
    assert book.c.get("/api/groups", params={"page[limit]": 501}).status_code == 422


def test_items_and_stop_list_count_stay_exact(server: LiveServer, book: Book) -> None:
    ids = [book.contact(phone(n))["id"] for n in range(5)]
    g, h = book.group("Counted"), book.group("Other")
    assert book.ok(book.attach(ids, [g["id"], h["id"]])) == {}
    assert book.counts(g["id"]) == (5, 0)
    book.ok(book.attach(ids[:2], [g["id"]]))  # again: no double counting
    assert book.counts(g["id"]) == (5, 0)

    # A phone on two lists counts once; every list type counts.
    book.ok(book.c.post("/api/stoplist/attach", json={"phones": [phone(0)], "types": ["sms", "rcs"]}))
    book.ok(book.c.post("/api/stoplist/attach", json={"phones": [phone(1)], "types": ["whatsapp"]}))
    book.ok(
        book.c.post("/api/stoplist/attach", json={"phones": [phone(99)], "types": ["viber"]})
    )  # no contact
    assert book.counts(g["id"]) == (5, 2)

    assert book.ok(book.detach([ids[0], ids[4]], [g["id"]])) == {}
    assert book.counts(g["id"]) == (3, 1) and book.counts(h["id"]) == (5, 2)
    assert book.c.delete(f"/api/contacts/{ids[1]}").status_code == 204
    assert book.counts(g["id"]) == (2, 0) and book.counts(h["id"]) == (4, 1)
    book.ok(book.c.post("/api/stoplist/detach", json={"ids": [phone(0)], "types": ["sms", "rcs"]}))
    assert book.counts(h["id"]) == (4, 0)

    # The numbers in a contact's embedded groups and in the listing agree.
    listed = {x["id"]: x for x in book.ok(book.c.get("/api/groups"))["data"]}
    embedded = book.ok(book.c.get(f"/api/contacts/{ids[2]}"))["data"]["groups"]
    assert embedded == [listed[g["id"]], listed[h["id"]]]


def test_attach_and_detach_limits(book: Book) -> None:
    g = book.group("Limits")
    c = book.contact(phone(1))
    many = list(range(1, 202))
    r = book.attach(many, [g["id"]])
    assert r.status_code == 422 and r.json()["errors"] == {
        "contacts": ["The contacts may not have more than 200 items."]
    }
    r = book.attach([c["id"]], list(range(1, 102)))
    assert r.status_code == 422 and r.json()["errors"] == {
        "groups": ["The groups may not have more than 100 items."]
    }
    r = book.detach(many, [g["id"]])
    assert r.status_code == 422 and "contacts" in r.json()["errors"]
    for body in (
        {"contacts": [], "groups": [g["id"]]},
        {"contacts": [c["id"]]},
        {"contacts": [0], "groups": [g["id"]]},
    ):
        r = book.c.post("/api/groups/attach", json=body)
        assert r.status_code == 422, body
    assert book.counts(g["id"]) == (0, 0)


def test_attach_200_contacts_to_100_groups(book: Book) -> None:
    contacts = [book.contact(phone(n))["id"] for n in range(200)]
    groups = [book.group(f"Bulk {n:03}")["id"] for n in range(100)]
    book.ok(book.attach(contacts, groups))
    listed = book.ok(book.c.get("/api/groups", params={"page[limit]": 100}))["data"]
    assert {g["items"] for g in listed} == {200}
    contact = book.ok(book.c.get(f"/api/contacts/{contacts[0]}"))["data"]
    assert len(contact["groups"]) == 100
    # A contact may be in at most 100 lists (the official client's model refuses more).
    extra = book.group("One too many")
    r = book.attach([contacts[0]], [extra["id"]])
    assert r.status_code == 422 and "contacts.0" in r.json()["errors"]
    book.ok(book.detach(contacts, groups[:50]))
    assert book.counts(groups[0]) == (0, 0) and book.counts(groups[50]) == (200, 0)


def test_group_search(server: LiveServer, book: Book) -> None:
    a = book.group("Alpha leads", description="crm")
    server.clock.advance(timedelta(days=1))
    b = book.group("Beta", default=True)
    c = book.group("Gamma leads")
    ids = [book.contact(phone(n))["id"] for n in range(3)]
    book.ok(book.attach(ids, [b["id"]]))
    book.ok(book.attach(ids[:1], [c["id"]]))

    def search(field: str, operator: str, value: str, **more: Any) -> list[int]:
        params = {"search[field]": field, "search[operator]": operator, "search[value]": value, **more}
        r = book.c.get("/api/groups/search", params=params)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["data"]]

    assert search("name", "like", "LEADS") == [a["id"], c["id"]]
    assert search("name", "=", "Beta") == [b["id"]]
    assert search("description", "like", "cr") == [a["id"]]
    assert search("items", ">", "0") == [b["id"], c["id"]]
    assert search("items", ">=", "0", sort="items", way="desc") == [b["id"], c["id"], a["id"]]
    assert search("phone", "=", str(phone(0))) == [b["id"], c["id"]]
    assert search("phone", "like", str(phone(2))[-4:]) == [b["id"]]
    assert search("created_at", ">=", "2026-01-02") == [b["id"], c["id"]]
    assert search("id", "=", str(a["id"])) == [a["id"]]
    assert search("id", ">", "0", sort="name", way="desc") == [c["id"], b["id"], a["id"]]
    assert search("id", ">", "0", sort="description") == [b["id"], c["id"], a["id"]]  # no description first
    r = book.ok(book.c.get("/api/groups/search", params={"search[field]": "name", "search[value]": "Beta"}))
    assert r["data"] == [
        {
            "id": b["id"],
            "name": "Beta",
            "description": None,
            "is_default": True,
            "items": 3,
            "created_at": "2026-01-02 12:00:00",
        }
    ]
    assert r["meta"]["search"] == {"field": "name", "operator": "=", "value": "Beta"}
    for params in (
        {"search[field]": "stop_list_count", "search[value]": "1"},
        {"search[field]": "name", "search[operator]": ">", "search[value]": "B"},
        {"search[field]": "items", "search[value]": "many"},
        {"sort": "phone"},
    ):
        assert book.c.get("/api/groups/search", params=params).status_code == 422, params


# ------------------------------------------------------------------ isolation


def test_accounts_cannot_see_or_touch_each_others_book(server: LiveServer) -> None:
    a_id, a_key = server.new_account("a")
    _, b_key = server.new_account("b")
    a, b = Book(server, a_key), Book(server, b_key)
    ga = a.group("Private list")
    ca = a.contact(phone(1), fields=[{"id": 1, "value": "secret"}], groups=[ga["id"]])
    server.call(
        lambda db: stoplist.attach(db, server.clock, account_id=a_id, phones=[str(phone(1))], list_type="rcs")
    )

    for r in (
        b.c.get(f"/api/contacts/{ca['id']}"),
        b.c.put(f"/api/contacts/{ca['id']}", json={"phone": phone(2)}),
        b.c.delete(f"/api/contacts/{ca['id']}"),
        b.c.get(f"/api/groups/{ga['id']}"),
        b.c.put(f"/api/groups/{ga['id']}", json={"name": "Mine now"}),
        b.c.delete(f"/api/groups/{ga['id']}"),
    ):
        assert r.status_code == 404, r.request.url
        assert "secret" not in r.text and "Private" not in r.text

    cb = b.contact(phone(1))  # the same phone is B's own contact, no conflict
    gb = b.group("Private list")  # names are unique per account only
    r = b.attach([ca["id"], cb["id"]], [gb["id"], ga["id"]])
    assert r.status_code == 422
    assert r.json()["errors"] == {
        "contacts.0": [f"Contact {ca['id']} was not found."],
        "groups.1": [f"Contact list {ga['id']} was not found."],
    }
    assert b.detach([ca["id"]], [gb["id"]]).status_code == 422
    r = b.c.post("/api/contacts", json={"phone": phone(3), "groups": [ga["id"]]})
    assert r.status_code == 422 and r.json()["errors"] == {
        "groups.0": [f"Contact list {ga['id']} was not found."]
    }
    r = b.c.put(f"/api/contacts/{cb['id']}", json={"phone": phone(1), "groups": [ga["id"]]})
    assert r.status_code == 422
    r = b.c.post("/api/contacts/delete", params={"contact_ids[]": [ca["id"]], "group_ids[]": [ga["id"]]})
    assert r.status_code == 422

    assert b.phones() == [phone(1)]
    assert b.phones(**{"groups[]": [ga["id"]]}) == []
    assert (
        b.phones("/api/contacts/search", **{"search[field]": "group_id", "search[value]": str(ga["id"])})
        == []
    )
    assert (
        b.phones(
            "/api/contacts/search",
            **{"search[field]": "1", "search[operator]": "like", "search[value]": "sec"},
        )
        == []
    )
    assert [g["id"] for g in b.ok(b.c.get("/api/groups"))["data"]] == [gb["id"]]
    assert b.counts(gb["id"]) == (0, 0)  # A's stop list does not count for B
    assert b.ok(b.c.get("/api/stoplist"))["total"] == 0

    # A's book is untouched.
    assert a.ok(a.c.get(f"/api/contacts/{ca['id']}"))["data"] == {
        **ca,
        "groups": [{**ca["groups"][0], "stop_list_count": 1}],
    }
    assert a.counts(ga["id"]) == (1, 1)
