"""The console's contacts and stop-list screens over HTTP (no JavaScript), against a live server: lists,
contacts, CSV import with column mapping, per-row errors and progress; the stop list's search, add,
remove, CSV import and export; CSRF; another account's ids (404 on every route)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from conftest import LiveServer, eventually
from rcsgate.services import contact_book, stoplist
from test_console_messages import Console, cheap_hashes, demo_console, other_console, text_of

__all__ = ["cheap_hashes"]
pytestmark = pytest.mark.usefixtures("cheap_hashes")


@pytest.fixture
def srv(server_factory: Callable[..., LiveServer]) -> LiveServer:
    return server_factory(run_workers=True)


def list_id_of(r: object) -> int:
    location = getattr(r, "headers", {}).get("location", "")
    match = re.match(r"/console/contacts/lists/(\d+)", location)
    assert match, location
    return int(match[1])


def import_csv(console: Console, body: str, form: dict[str, str], *, list_id: int | None = None) -> str:
    """Upload, map and start an import; answers the import's page URL once it is done."""
    r = console.post(
        "/console/contacts/import",
        {"list_id": str(list_id)} if list_id else {},
        files={"file": ("people.csv", body.encode(), "text/csv")},
    )
    assert r.status_code == 303, text_of(r.text)
    url = r.headers["location"].split("?")[0]
    mapping = console.get(r.headers["location"])
    assert mapping.status_code == 200 and 'data-testid="column-0"' in mapping.text
    started = console.post(url, form)
    assert started.status_code == 303, text_of(started.text)

    def done() -> str | None:
        page = console.get(f"{url}/progress", headers={"HX-Request": "true"})
        return page.text if 'data-state="done"' in page.text else None

    eventually(done, timeout=15, interval=0.05, what="the import to finish")
    return url


def test_lists_contacts_and_csv_import_with_mapping_and_row_errors(srv: LiveServer) -> None:
    console = demo_console(srv)
    made = console.post("/console/contacts/lists", {"name": "Customers", "description": "From the shop"})
    customers = list_id_of(made)
    clash = console.post("/console/contacts/lists", {"name": "customers"})
    assert clash.status_code == 422 and "Contact group is already exists" in text_of(clash.text)
    assert console.c.post("/console/contacts/lists", data={"name": "No token"}).status_code == 403

    added = console.post("/console/contacts/add", {"phone": "380661230001", "list_id": str(customers)})
    assert added.status_code == 303
    assert console.post("/console/contacts/add", {"phone": "0661230001"}).status_code == 422

    # Custom field 7 from the first column, the phone from the second, the third ignored; a bad
    # row and a repeated phone are reported by row; the known phone joins the list.
    body = "name;phone;city\nAnn;380661230001;Kyiv\nBob;380661230002;Lviv\nBad;12ab;X\nCid;+380661230003;Odesa\nDup;380661230002;Z\n"
    form = {
        "has_header": "1",
        "column_0": "field",
        "field_0": "7",
        "column_1": "phone",
        "column_2": "",
        "groups": str(customers),
        "new_list": "Imported",
    }
    url = import_csv(console, body, form, list_id=customers)
    page = console.get(url)
    shown = text_of(page.text)
    assert "2 new contacts · 1 already in the book" in shown and "2 rows refused" in shown
    errors = text_of(page.text.split('data-testid="import-errors"')[1].split("</table>")[0])
    assert "4 12ab Not a phone number" in errors and "6 380661230002 The same phone as row 3" in errors
    listed = text_of(console.get(f"/console/contacts/lists/{customers}").text)
    assert "+380661230001" in listed and "+380661230003" in listed and "#7 Cid" in listed
    api = console.api()
    groups = {g["name"]: g for g in api.get("/api/groups").json()["data"]}
    assert groups["Customers"]["items"] == 3 and groups["Imported"]["items"] == 3

    # A mapping without a phone column is refused and the import waits.
    r = console.post(
        "/console/contacts/import", files={"file": ("x.csv", b"phone\n380661230009\n", "text/csv")}
    )
    waiting = r.headers["location"]
    refused = console.post(waiting, {"column_0": "", "has_header": "1"})
    assert refused.status_code == 422 and "exactly one column" in text_of(refused.text)

    contact = api.get(
        "/api/contacts/search", params={"search[field]": "phone", "search[value]": "380661230003"}
    )
    contact_id = contact.json()["data"][0]["id"]
    # A list id no row can have (a tampered form) is refused as input, not a server error.
    for bad_list in ("9" * 30, "abc", ""):
        r = console.post(f"/console/contacts/{contact_id}/detach", {"list_id": bad_list})
        assert r.status_code == 422, (bad_list, r.status_code)
    detached = console.post(f"/console/contacts/{contact_id}/detach", {"list_id": str(customers)})
    assert detached.status_code == 303
    assert console.post(f"/console/contacts/{contact_id}/delete").status_code == 303
    assert console.post(f"/console/contacts/lists/{customers}/delete").status_code == 303
    assert "Customers" not in {g["name"] for g in api.get("/api/groups").json()["data"]}

    # Another account: every route with an id of this one is not found.
    other = other_console(srv)
    imported = groups["Imported"]["id"]
    ann = api.get("/api/contacts/search", params={"search[field]": "phone", "search[value]": "380661230001"})
    ann_id = ann.json()["data"][0]["id"]
    assert other.get(f"/console/contacts/lists/{imported}").status_code == 404
    assert other.post(f"/console/contacts/lists/{imported}/delete").status_code == 404
    assert other.post(f"/console/contacts/{ann_id}/delete").status_code == 404
    assert other.post(f"/console/contacts/{ann_id}/detach", {"list_id": str(imported)}).status_code == 404
    assert other.post("/console/contacts/add", {"phone": "380661230077"}).status_code == 303
    own = other.api().get(
        "/api/contacts/search", params={"search[field]": "phone", "search[value]": "380661230077"}
    )
    own_id = own.json()["data"][0]["id"]
    assert other.post(f"/console/contacts/{own_id}/detach", {"list_id": str(imported)}).status_code == 404
    for path in (waiting, f"{url}/progress"):
        assert other.get(path).status_code == 404
    assert other.post(waiting, {"column_0": "phone"}).status_code == 404
    assert (
        other.post("/console/contacts/add", {"phone": "380661230001", "list_id": str(imported)}).status_code
        == 422
    )
    assert "+380661230001" not in other.get("/console/contacts").text
    assert api.get(f"/api/groups/{imported}").json()["data"]["items"] == 2  # one was deleted above


def test_stop_list_search_add_remove_import_and_export(srv: LiveServer) -> None:
    console = demo_console(srv)
    added = console.post(
        "/console/stop-list/add", {"phones": "380661230001, +380661230009", "types": ["rcs", "sms"]}
    )
    assert added.status_code == 303 and "2+phones+added" in added.headers["location"]
    bad = console.post("/console/stop-list/add", {"phones": "380661230002\nabc", "types": ["rcs"]})
    assert bad.status_code == 422 and "'abc' is not a phone number" in text_of(bad.text)
    assert (
        console.c.post("/console/stop-list/add", data={"phones": "380661230003", "types": "rcs"}).status_code
        == 403
    )

    imported = console.post(
        "/console/stop-list/import",
        {"types": ["rcs"]},
        files={"file": ("stop.csv", b"name,phone\na,380661230011\nb,12x\nc,380661230012\n", "text/csv")},
    )
    report = text_of(imported.text.split('data-testid="import-report"')[1].split("</section>")[0])
    assert "2 phones put on RCS from 3 rows; 1 row refused" in report and "3 12x Not a phone number" in report

    found = console.get("/console/stop-list", params={"phone": "6612300"})
    rows = text_of(found.text.split('data-testid="stoplist"')[1].split("</table>")[0])
    assert (
        "+380661230001 on on" in rows
        and "+380661230011 \u2013 on" in rows
        and "4 phones" in text_of(found.text)
    )
    only_sms = console.get("/console/stop-list", params={"type": "sms"})
    assert "+380661230011" not in only_sms.text and "+380661230009" in only_sms.text

    removed = console.post("/console/stop-list/remove", {"phone": "380661230001", "types": ["rcs"]})
    assert removed.status_code == 303
    entries = srv.call(
        lambda db: stoplist.list_entries(db, account_id=console.account_id, offset=0, limit=50)
    ).items
    assert {e.phone: set(e.types) for e in entries}["380661230001"] == {"sms"}

    export = console.get("/console/stop-list/export.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    lines = export.text.splitlines()
    assert lines[0] == "phone,sms,rcs,viber,whatsapp,created_at"
    assert "380661230001,1,0,0,0,2026-01-01 12:00:00" in lines and len(lines) == 5
    rcs_only = console.get("/console/stop-list/export.csv", params={"type": "rcs"}).text.splitlines()
    assert len(rcs_only) == 4 and not any(line.startswith("380661230001,") for line in rcs_only)

    # Another account sees none of it, and removing a phone there leaves this account's list alone.
    other = other_console(srv)
    assert "+380661230009" not in other.get("/console/stop-list").text
    assert other.get("/console/stop-list/export.csv").text.splitlines() == [lines[0]]
    assert (
        other.post(
            "/console/stop-list/remove", {"phone": "380661230009", "types": ["rcs", "sms"]}
        ).status_code
        == 303
    )
    still = srv.call(lambda db: stoplist.list_entries(db, account_id=console.account_id, offset=0, limit=50))
    assert "380661230009" in {e.phone for e in still.items}
    group = srv.call(lambda db: contact_book.list_groups(db, account_id=other.account_id, offset=0, limit=5))
    assert group.total == 0
