"""Length limits on every list the API takes, and the request-body size limit.

The list inputs are read from the live ``/openapi.json`` (arrays in request bodies, array query
parameters): each must have a case here or name the existing test that covers it, so a new list input
without a limit test fails. A case sends one item more than the limit (422 naming the field, with the
limit in the message, and nothing stored) and exactly the limit (no error on that field). Every body
stays far below the body-size limit, so the list rule is what answers; the body-size limit has its own
tests at the end."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer
from rcsgate.services.demo import ensure_demo

TESTS = Path(__file__).parent
DEFAULT_MAX_BODY = 5 * 1024 * 1024
MISSING_ID = 10**12  # ids that exist nowhere: at the limit they are refused one by one, not as a list

# List inputs whose limit an existing test already checks (file::test); the guard below makes sure
# that test still exists.
COVERED_ELSEWHERE = {
    ("POST", "/api/campaigns/rcs/send", "phones"): "test_campaigns.py::test_phone_rules_and_limits",
    ("POST", "/api/stoplist/attach", "phones"): "test_stoplist_api.py::test_request_rules",
    ("POST", "/api/stoplist/detach", "ids"): "test_stoplist_api.py::test_request_rules",
    ("POST", "/api/groups/attach", "contacts"): "test_contact_book.py::test_attach_and_detach_limits",
    ("POST", "/api/groups/attach", "groups"): "test_contact_book.py::test_attach_and_detach_limits",
    ("POST", "/api/groups/detach", "contacts"): "test_contact_book.py::test_attach_and_detach_limits",
    ("POST", "/api/contacts/delete", "contact_ids"): (
        "test_contact_book.py::test_bulk_delete_by_json_body_and_its_limit"
    ),
    ("POST", "/api/contacts", "groups"): "test_contact_book.py::test_field_and_group_rules",
}


@dataclass
class Env:
    server: LiveServer
    c: httpx.Client
    group: int  # a list holding one contact, for send-groups
    contact: int

    def counts(self) -> dict[str, Any]:
        """What a caller can see of its account: stored things and their numbers."""
        out: dict[str, Any] = {}
        for path, key in (
            ("/api/messages", "meta"),
            ("/api/campaigns", "meta"),
            ("/api/contacts", "total"),
            ("/api/groups", "total"),
            ("/api/stoplist", "total"),
        ):
            r = self.c.get(path)
            assert r.status_code == 200, r.text
            out[path] = r.json()[key]
        r = self.c.get(f"/api/contacts/{self.contact}")
        out["contact"] = r.json()["data"]
        return out


@pytest.fixture
def env(server: LiveServer) -> Iterator[Env]:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    with httpx.Client(base_url=server.base_url, headers={"X-API-KEY": demo.api_key}, timeout=60) as c:
        group = c.post("/api/groups", json={"name": "Limits"}).json()["data"]["id"]
        contact = c.post("/api/contacts", json={"phone": 380661230001, "groups": [group]}).json()["data"][
            "id"
        ]
        yield Env(server, c, group, contact)


# ------------------------------------------------------------------ request builders


def card(i: int, suggestions: int = 1) -> dict[str, Any]:
    return {
        "title": f"Card {i}",
        "text": f"Card text {i}",
        "suggestions": [
            {"text": f"Go {j}", "url": f"https://example.com/{i}/{j}"} for j in range(suggestions)
        ],
    }


def cards(n: int) -> dict[str, Any]:
    return {"cards": [card(i) for i in range(n)]}


def suggestions(n: int) -> dict[str, Any]:
    return {"cards": [card(0, n)]}


def single(options: dict[str, Any], n: int) -> dict[str, Any]:
    # A distinct recipient per request, so that no body repeats (that would be a 429).
    return {"phone": {"number": f"3806612{n:05d}"}, "sender": "demo_agent", "options": options}


def campaign(options: dict[str, Any], n: int) -> dict[str, Any]:
    return {"phones": [{"number": f"3806613{n:05d}"}], "sender": "demo_agent", "options": options}


def ids(n: int, start: int = MISSING_ID) -> list[int]:
    return list(range(start, start + n))


def phones(n: int, start: int = 380500000000) -> list[int]:
    return list(range(start, start + n))


Request = tuple[str, str, dict[str, Any]]


@dataclass
class Limit:
    """A list input: ``build(env, n)`` is a request carrying n items in it; more than ``most`` is a 422
    on ``field``."""

    method: str
    path: str
    field: str
    most: int
    build: Callable[[Env, int], Request]
    where: str = "body"  # or "query"


def limits() -> list[Limit]:
    def send(options: Callable[[int], dict[str, Any]], path: str, wrap: Callable[..., dict[str, Any]]):  # type: ignore[no-untyped-def]
        return lambda e, n: ("POST", path, {"json": wrap(options(n), n)})

    def groups_send(options: Callable[[int], dict[str, Any]]):  # type: ignore[no-untyped-def]
        return lambda e, n: (
            "POST",
            "/api/campaigns/rcs/send-groups",
            {"json": {"groups": [e.group], "sender": "demo_agent", "options": options(n)}},
        )

    return [
        # RCS content: cards (RCSGATE_MAX_CARDS, default 10) and suggestions (4 per card), on all three sends.
        Limit(
            "POST",
            "/api/messages/rcs/send",
            "options.cards",
            10,
            send(cards, "/api/messages/rcs/send", single),
        ),
        Limit(
            "POST",
            "/api/messages/rcs/send",
            "options.cards.N.suggestions",
            4,
            send(suggestions, "/api/messages/rcs/send", single),
        ),
        Limit(
            "POST",
            "/api/campaigns/rcs/send",
            "options.cards",
            10,
            send(cards, "/api/campaigns/rcs/send", campaign),
        ),
        Limit(
            "POST",
            "/api/campaigns/rcs/send",
            "options.cards.N.suggestions",
            4,
            send(suggestions, "/api/campaigns/rcs/send", campaign),
        ),
        Limit("POST", "/api/campaigns/rcs/send-groups", "options.cards", 10, groups_send(cards)),
        Limit(
            "POST",
            "/api/campaigns/rcs/send-groups",
            "options.cards.N.suggestions",
            4,
            groups_send(suggestions),
        ),
        # Contact-list campaigns: at most 1000 list ids.
        Limit(
            "POST",
            "/api/campaigns/rcs/send-groups",
            "groups",
            1000,
            lambda e, n: (
                "POST",
                "/api/campaigns/rcs/send-groups",
                {"json": {"groups": ids(n), "sender": "demo_agent", "options": {"text": "Hi"}}},
            ),
        ),
        # Bulk delete: 5000 contact ids and 100 list ids, counted over the query and the body together.
        Limit(
            "POST",
            "/api/contacts/delete",
            "contact_ids[]",
            5000,
            lambda e, n: (
                "POST",
                "/api/contacts/delete",
                {
                    "params": {"contact_ids[]": ids(100)},
                    "json": {"contact_ids": ids(n - 100, MISSING_ID + 100)},
                },
            ),
            "query",
        ),
        Limit(
            "POST",
            "/api/contacts/delete",
            "group_ids[]",
            100,
            lambda e, n: ("POST", "/api/contacts/delete", {"params": {"group_ids[]": ids(n)}}),
            "query",
        ),
        Limit(
            "POST",
            "/api/contacts/delete",
            "group_ids",
            100,
            lambda e, n: ("POST", "/api/contacts/delete", {"json": {"group_ids": ids(n)}}),
        ),
        # Listing contacts of given lists: at most 1000 list ids.
        Limit(
            "GET",
            "/api/contacts",
            "groups[]",
            1000,
            lambda e, n: ("GET", "/api/contacts", {"params": {"groups[]": ids(n, 1)}}),
            "query",
        ),
        # A contact's custom fields (100) and lists (100), on create and on update.
        Limit(
            "POST",
            "/api/contacts",
            "fields",
            100,
            lambda e, n: (
                "POST",
                "/api/contacts",
                {
                    "json": {
                        "phone": 380661239000 + n,
                        "fields": [{"id": i + 1, "value": "v"} for i in range(n)],
                    }
                },
            ),
        ),
        Limit(
            "PUT",
            "/api/contacts/{id}",
            "fields",
            100,
            lambda e, n: (
                "PUT",
                f"/api/contacts/{e.contact}",
                {"json": {"phone": 380661230001, "fields": [{"id": i + 1, "value": "v"} for i in range(n)]}},
            ),
        ),
        Limit(
            "PUT",
            "/api/contacts/{id}",
            "groups",
            100,
            lambda e, n: (
                "PUT",
                f"/api/contacts/{e.contact}",
                {"json": {"phone": 380661230001, "groups": ids(n)}},
            ),
        ),
        # Detaching from more than 100 lists at once.
        Limit(
            "POST",
            "/api/groups/detach",
            "groups",
            100,
            lambda e, n: (
                "POST",
                "/api/groups/detach",
                {"json": {"contacts": [e.contact], "groups": ids(n)}},
            ),
        ),
        # Stop lists: types (16, repeats allowed and dropped) and detach by phone (1000).
        Limit(
            "POST",
            "/api/stoplist/attach",
            "types",
            16,
            lambda e, n: (
                "POST",
                "/api/stoplist/attach",
                {"json": {"phones": [380661230009], "types": ["sms"] * n}},
            ),
        ),
        Limit(
            "POST",
            "/api/stoplist/detach",
            "types",
            16,
            lambda e, n: (
                "POST",
                "/api/stoplist/detach",
                {"json": {"ids": [380661230009], "types": ["rcs"] * n}},
            ),
        ),
        Limit(
            "POST",
            "/api/stoplist/detach",
            "phones",
            1000,
            lambda e, n: ("POST", "/api/stoplist/detach", {"json": {"phones": phones(n), "types": ["sms"]}}),
        ),
    ]


def error_key(field: str) -> str:
    """The key the 422 names: query lists without their brackets, like the body's."""
    return field.removesuffix("[]").replace(".N.", ".0.")


def list_inputs(spec: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(method, path, field) of every array in a request body or the query, from the OpenAPI document."""
    components = spec.get("components", {}).get("schemas", {})
    found: set[tuple[str, str, str]] = set()

    def walk(schema: dict[str, Any], at: str, seen: frozenset[str], key: tuple[str, str]) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(components[name], at, seen | {name}, key)
            return
        for combinator in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(combinator, []):
                walk(sub, at, seen, key)
        if schema.get("type") == "array":
            found.add((*key, at))
            walk(schema.get("items", {}), f"{at}.N", seen, key)
        for name, sub in schema.get("properties", {}).items():
            walk(sub, f"{at}.{name}" if at else name, seen, key)

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            key = (method.upper(), path)
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                kinds = [schema, *schema.get("anyOf", [])]
                if parameter["in"] == "query" and any(k.get("type") == "array" for k in kinds):
                    found.add((*key, parameter["name"]))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "schema" in body:
                walk(body["schema"], "", frozenset(), key)
    return found


# ------------------------------------------------------------------ the tests


def test_every_list_input_has_a_limit_test(server: LiveServer) -> None:
    spec = server.client().get("/openapi.json").json()
    inputs = list_inputs(spec)
    assert ("POST", "/api/campaigns/rcs/send", "phones") in inputs  # the walk finds body arrays
    assert ("GET", "/api/contacts", "groups[]") in inputs  # and query arrays
    here = {(limit.method, limit.path, limit.field) for limit in limits()}
    missing = inputs - here - set(COVERED_ELSEWHERE)
    assert not missing, f"list inputs without a length-limit test: {sorted(missing)}"
    gone = (here | set(COVERED_ELSEWHERE)) - inputs
    assert not gone, f"limit tests for list inputs that no longer exist: {sorted(gone)}"
    assert not here & set(COVERED_ELSEWHERE), "covered twice"
    for where in set(COVERED_ELSEWHERE.values()):
        file, name = where.split("::")
        assert f"def {name}(" in (TESTS / file).read_text(), f"{where} is gone: cover its limit here"


def test_one_item_over_each_list_limit_is_a_422_naming_the_field(env: Env) -> None:
    for limit in limits():
        method, path, kwargs = limit.build(env, limit.most + 1)
        size = len(json.dumps(kwargs.get("json")).encode()) + len(str(kwargs.get("params") or ""))
        assert size < DEFAULT_MAX_BODY // 10, f"{limit.field}: the body limit would answer first"
        before = env.counts()
        r = env.c.request(method, path, **kwargs)
        assert r.status_code == 422, (limit.path, limit.field, r.status_code, r.text[:300])
        body = r.json()
        assert body["message"] == "The given data was invalid.", (limit.field, body)
        key = error_key(limit.field)
        assert key in body["errors"], (limit.path, limit.field, body["errors"])
        assert any(str(limit.most) in text for text in body["errors"][key]), (
            limit.field,
            body["errors"][key],
        )
        assert env.counts() == before, f"{limit.path} {limit.field}: something was stored"


def test_exactly_the_limit_passes_the_list_rule(env: Env) -> None:
    for limit in limits():
        method, path, kwargs = limit.build(env, limit.most)
        r = env.c.request(method, path, **kwargs)
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            # Refused for another reason (the ids exist nowhere), item by item, never for the length.
            assert r.status_code == 422, (limit.path, limit.field, r.text[:300])
            errors = r.json()["errors"]
            assert error_key(limit.field) not in errors, (
                limit.path,
                limit.field,
                errors.get(error_key(limit.field)),
            )
            assert errors, (limit.path, limit.field)


def test_the_card_limit_follows_the_setting(server_factory: Callable[..., LiveServer]) -> None:
    srv = server_factory(max_cards=3)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    with srv.client(headers={"X-API-KEY": demo.api_key}) as c:
        r = c.post("/api/messages/rcs/send", json=single(cards(4), 1))
        assert r.status_code == 422 and "options.cards" in r.json()["errors"], r.text
        assert "3" in r.json()["errors"]["options.cards"][0]
        r = c.post("/api/campaigns/rcs/send", json=campaign(cards(4), 1))
        assert r.status_code == 422 and "options.cards" in r.json()["errors"], r.text
        assert c.get("/api/messages").json()["meta"]["page"]["total"] == 0
        r = c.post("/api/messages/rcs/send", json=single(cards(3), 2))
        assert r.status_code == 200, r.text


def test_search_criteria_are_limited_to_ten(env: Env) -> None:
    def criteria(n: int) -> dict[str, str]:
        params: dict[str, str] = {}
        for i in range(n):
            params[f"search_fields[{i}][field]"] = "id"
            params[f"search_fields[{i}][operator]"] = ">="
            params[f"search_fields[{i}][value]"] = "1"
        return params

    for path in ("/api/contacts/search", "/api/groups/search", "/api/stoplist/search"):
        r = env.c.get(path, params=criteria(11))
        assert r.status_code == 422, (path, r.text)
        assert "10" in r.json()["errors"]["search_fields"][0], (path, r.json())
        # search[...] counts as one of them.
        r = env.c.get(path, params={**criteria(10), "search[field]": "id", "search[value]": "1"})
        assert r.status_code == 422 and "search_fields" in r.json()["errors"], (path, r.text)
        r = env.c.get(path, params=criteria(10))
        assert r.status_code == 200, (path, r.text)


def test_contact_lists_merging_to_more_than_5000_recipients_are_refused(env: Env) -> None:
    # 5001 distinct phones across two lists (2600 + 2401): each list alone is fine, together too many.
    r = env.c.post(
        "/api/campaigns/rcs/send",
        json={
            "phones": [{"number": str(p)} for p in phones(5000, 380670000000)],
            "sender": "demo_agent",
            "options": {"text": "Seed"},
            "start_at": "2026-01-20 10:00:00",  # scheduled: nothing goes out, the contacts are made
        },
    )
    assert r.status_code == 200, r.text
    contact_ids: list[int] = []
    while True:
        page = env.c.get(
            "/api/contacts", params={"page[limit]": 500, "page[offset]": len(contact_ids)}
        ).json()
        contact_ids += [c["id"] for c in page["data"]]
        if len(contact_ids) >= page["total"]:
            break
    assert len(contact_ids) == 5001  # the seed's 5000 and the fixture's one
    first = env.c.post("/api/groups", json={"name": "First half"}).json()["data"]["id"]
    second = env.c.post("/api/groups", json={"name": "Second half"}).json()["data"]["id"]
    for start in range(0, len(contact_ids), 200):
        chunk = contact_ids[start : start + 200]
        target = first if start < 2600 else second
        assert (
            env.c.post("/api/groups/attach", json={"contacts": chunk, "groups": [target]}).status_code == 200
        )
    before = env.counts()
    body = {"sender": "demo_agent", "options": {"text": "Too many"}}
    r = env.c.post("/api/campaigns/rcs/send-groups", json={**body, "groups": [first, second]})
    assert r.status_code == 422, r.text
    assert "5000" in r.json()["errors"]["groups"][0]
    assert env.counts() == before
    # Overlap is counted once: the first list with its own 2600 and a list that repeats them is fine.
    r = env.c.post("/api/campaigns/rcs/send-groups", json={**body, "groups": [first, first, env.group]})
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ the body-size limit


def padded(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes: a campaign without phones, padded by an ignored field."""
    head = b'{"sender": "demo_agent", "options": {"text": "Hi"}, "phones": [], "pad": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_body_limit_default_is_5_mb_on_the_api_routes(env: Env) -> None:
    assert env.server.settings.max_body_bytes == DEFAULT_MAX_BODY
    headers = {"content-type": "application/json"}
    before = env.counts()
    at_limit = padded(DEFAULT_MAX_BODY)
    assert len(at_limit) == DEFAULT_MAX_BODY
    r = env.c.post("/api/campaigns/rcs/send", content=at_limit, headers=headers)
    # Read and validated: the list rule answers, not the size limit.
    assert r.status_code == 422 and "phones" in r.json()["errors"], r.text[:300]

    for path in (
        "/api/campaigns/rcs/send",
        "/api/messages/rcs/send",
        "/api/contacts",
        "/api/stoplist/attach",
    ):
        r = env.c.post(path, content=padded(DEFAULT_MAX_BODY + 1), headers=headers)
        assert r.status_code == 413, (path, r.status_code)
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == {"message": "Request body too large.", "errors": {}}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds for a streamed body too
        body = padded(DEFAULT_MAX_BODY + 1)
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    r = env.c.post("/api/campaigns/rcs/send", content=chunks(), headers=headers)
    assert r.status_code == 413 and r.json()["message"] == "Request body too large."
    assert env.counts() == before


def test_the_largest_legitimate_campaign_fits_the_body_limit(env: Env) -> None:
    # 5000 phones with 32-character references, 10 cards of maximal text, 4 suggestions each, an SMS
    # alternative of 765 characters: what the limits allow must be sendable under the default body limit.
    body = {
        "phones": [
            {"number": str(p), "reference_id": f"R{p:031d}"[-32:]} for p in phones(5000, 380680000000)
        ],
        "sender": "demo_agent",
        "options": {
            "cards": [
                {
                    "title": "T" * 200,
                    "text": "x" * 1000,
                    "media": {"url": "https://example.com/" + "m" * 960 + ".png"},
                    "suggestions": [
                        {
                            "text": "s" * 25,
                            "url": "https://example.com/" + "u" * 960,
                            "postback_data": "p" * 25,
                        }
                        for _ in range(4)
                    ],
                }
                for _ in range(10)
            ]
        },
        "alternative_channel": {"sms": {"text": "a" * 765, "sender": "DemoSMS"}},
        "start_at": "2026-01-20 10:00:00",
    }
    raw = json.dumps(body).encode()
    assert len(raw) < DEFAULT_MAX_BODY
    r = env.c.post("/api/campaigns/rcs/send", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:500]
    assert env.c.get(f"/api/campaigns/{r.json()['data']['id']}/detail").json()["data"]["total_phones"] == 5000
