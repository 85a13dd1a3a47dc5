"""Input that is not storable text, that nests too deep or that no 64-bit integer fits: a 422 naming
the field, on every route and both engines, with nothing stored.

- Strings that are not text: an unpaired UTF-16 surrogate escape ("\\ud800") or a NUL ("\\u0000"), in
  any string of any request body (values and keys), or a NUL in any query parameter. They were 500s
  (UnicodeEncodeError while hashing or writing the request; PostgreSQL refusing NUL in text), or
  stored on SQLite.
- Message text that is only whitespace: not a message.
- JSON nested more than 64 levels deep, anywhere in a body (unknown fields too): it was a 500
  (RecursionError) on the routes that hash or validate the body.
- Integer query and path parameters beyond 64 bits: filter[id] and filter[campaign_id] were 500s
  (OverflowError).

The cases derive from the live ``/openapi.json``, as in test_input_limits.py: every string in every
request body, every query parameter, every integer query or path parameter and every route gets one,
so that a new field, parameter or route is covered as soon as it is documented (a new body route
without a base body below fails the guard test)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import LiveServer
from rcsgate.api.bodies import MAX_DEPTH, decode_json
from rcsgate.services.demo import ensure_demo

INVALID = "The given data was invalid."
TOO_DEEP = f"The request body may not be nested more than {MAX_DEPTH} levels deep."
INT64_MAX = 2**63 - 1
MISSING_ID = 10**12
JSON = {"content-type": "application/json"}

# What a string may not hold: the error message for each (the attribute is filled in per field).
NOT_TEXT = {
    "\ud800": "The {} may not contain unpaired UTF-16 surrogates.",  # a high surrogate alone
    "x\udfffy": "The {} may not contain unpaired UTF-16 surrogates.",  # a low one, inside text
    "a\x00b": "The {} may not contain NUL characters.",
}


@dataclass
class Env:
    server: LiveServer
    c: httpx.Client
    api_key: str
    group: int
    contact: int
    campaign: int

    def snapshot(self) -> dict[str, Any]:
        """Everything a caller can read back of its account."""
        out: dict[str, Any] = {}
        for path in ("/api/messages", "/api/campaigns", "/api/contacts", "/api/groups", "/api/stoplist"):
            r = self.c.get(path)
            assert r.status_code == 200, r.text
            out[path] = r.json()
        return out


@pytest.fixture
def env(server: LiveServer) -> Iterator[Env]:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    with httpx.Client(base_url=server.base_url, headers={"X-API-KEY": demo.api_key}, timeout=60) as c:
        group = c.post("/api/groups", json={"name": "Bad input"}).json()["data"]["id"]
        contact = c.post("/api/contacts", json={"phone": 380661230001, "groups": [group]}).json()["data"]
        campaign = c.post(
            "/api/campaigns/rcs/send",
            json={
                "phones": [{"number": "380661230002"}],
                "sender": "demo_agent",
                "options": {"text": "Later"},
                "start_at": "2026-01-05 10:00:00",
            },
        ).json()["data"]
        yield Env(server, c, demo.api_key, group, contact["id"], campaign["id"])


@pytest.fixture
def spec(server: LiveServer) -> dict[str, Any]:
    with server.client() as c:
        return dict(c.get("/openapi.json").json())


# ------------------------------------------------------------------ bodies


SUGGESTIONS = [
    {"type": "link", "text": "Go", "url": "https://example.com/", "postback_data": "go"},
    {"type": "call", "text": "Call", "phone": "380661112233"},
]
CARD = {
    "title": "Title",
    "text": "Card text",
    "media": {"url": "https://example.com/a.png"},
    "suggestions": SUGGESTIONS,
}


def _send(field: str) -> dict[str, Any]:
    return {
        "sender": "demo_agent",
        "options": {"cards": [CARD]} if ".cards." in field else {"text": "Hello"},
        "alternative_channel": {"sms": {"text": "By SMS", "sender": "DemoSMS"}},
        "callback_url": "https://example.com/hook",
    }


def bases(e: Env) -> dict[tuple[str, str], Callable[[str], dict[str, Any]]]:
    """A well-formed body for every route that takes one, given the field a case puts its value in."""
    later = {"start_at": "2026-01-05 10:00:00"}
    contact = {"phone": "380661230003", "fields": [{"id": 1, "value": "v"}], "groups": [e.group]}
    group = {"name": "Customers", "description": "About them"}
    membership = {"contacts": [e.contact], "groups": [e.group]}
    return {
        ("POST", "/api/auth/login"): lambda f: {"api_key": "live_nothing"},
        ("POST", "/api/messages/rcs/send"): lambda f: {
            **_send(f),
            "phone": {"number": "380661230004", "reference_id": "ref1"},
        },
        ("POST", "/api/campaigns/rcs/send"): lambda f: {
            **_send(f),
            "phones": [{"number": "380661230005", "reference_id": "ref2"}],
            **later,
        },
        ("POST", "/api/campaigns/rcs/send-groups"): lambda f: {**_send(f), "groups": [e.group], **later},
        ("POST", "/api/contacts"): lambda f: contact,
        ("PUT", "/api/contacts/{id}"): lambda f: contact,
        ("POST", "/api/contacts/delete"): lambda f: {"contact_ids": [MISSING_ID]},
        ("POST", "/api/groups"): lambda f: group,
        ("PUT", "/api/groups/{id}"): lambda f: group,
        ("POST", "/api/groups/attach"): lambda f: membership,
        ("POST", "/api/groups/detach"): lambda f: membership,
        ("POST", "/api/stoplist/attach"): lambda f: {"phones": ["380661230006"], "types": ["sms"]},
        ("POST", "/api/stoplist/detach"): lambda f: {
            "ids": ["380661230006"],
            "phones": ["380661230006"],
            "types": ["sms"],
        },
    }


def url(e: Env, path: str, value: Any = None) -> str:
    """The path with its parameters filled in: ``value`` if given, else an id of this account."""
    ids = {"{id}": e.group if path.startswith("/api/groups") else e.contact, "{campaign_id}": e.campaign}
    for name, own in ids.items():
        path = path.replace(name, str(own if value is None else value))
    return path


def put(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with the dotted ``field`` (N: the first item) set to ``value``."""
    result = copy.deepcopy(body)
    node: Any = result
    *parents, last = field.split(".")
    for part in parents:
        node = node[0] if part == "N" else node.setdefault(part, {})
    if last == "N":
        node[0] = value
    else:
        node[last] = value
    return result


def key_of(field: str) -> str:
    return field.replace(".N", ".0")


def shown(key: str) -> str:
    """How an error message names a field (Laravel's: underscores as spaces)."""
    return key.replace("_", " ")


def body_strings(spec: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(method, path, field) of every string in a request body (array items: ``.N``)."""
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
        if schema.get("type") == "string" or (schema.get("enum") and schema.get("type") != "array"):
            found.add((*key, at))
        if schema.get("type") == "array":
            walk(schema.get("items", {}), f"{at}.N", seen, key)
        for name, sub in schema.get("properties", {}).items():
            walk(sub, f"{at}.{name}" if at else name, seen, key)

    for path, method, operation in operations(spec):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "schema" in body:
            walk(body["schema"], "", frozenset(), (method, path))
    return found


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def parameters(spec: dict[str, Any], where: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, name, schema) of every parameter ``where`` ("query" or "path")."""
    return [
        (method, path, p["name"], p.get("schema", {}))
        for path, method, operation in operations(spec)
        for p in operation.get("parameters", [])
        if p["in"] == where
    ]


def integer_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """The integer schema of a parameter (and whether it is an array of them), or None."""
    for kind in (schema, *schema.get("anyOf", [])):
        if kind.get("type") == "integer":
            return kind, False
        if kind.get("type") == "array" and kind.get("items", {}).get("type") == "integer":
            return kind["items"], True
    return None


def send(e: Env, method: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    # ensure_ascii (json.dumps' default): a lone surrogate or a NUL travels as its \u escape.
    return e.c.request(method, url(e, path), content=json.dumps(body).encode(), headers=JSON, **kwargs)


# ------------------------------------------------------------------ the body reader


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "b": [true, false, null], "c": "x", "d": 1.5, "a": 2}',
        b'{"id": 9223372036854775807, "big": 18446744073709551616, "neg": -9223372036854775809}',
        b'{"value": 123456789012345678901234567890, "f": 1e400, "n": NaN, "i": -Infinity}',
        b'{"reference_id": "R0000000000000000000000000000001"}',
        '{"text": "\u0436"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"bom": true}',
        b'  {"spaced": "\\\\u0000 is six characters"}  ',
    ],
)
def test_the_body_reader_reads_what_json_loads_read(raw: bytes) -> None:
    """orjson reads well-formed bodies; what it refuses or would read differently (numbers beyond 64
    bits become floats) goes to json.loads, so every body means what it meant before."""
    assert repr(decode_json(raw)) == repr(json.loads(raw))


# ------------------------------------------------------------------ strings in bodies


def test_every_route_with_a_body_has_a_base_body(env: Env, spec: dict[str, Any]) -> None:
    with_body = {(method, path) for path, method, operation in operations(spec) if "requestBody" in operation}
    assert ("POST", "/api/messages/rcs/send") in with_body
    assert with_body == set(bases(env)), "give a new body route a base body in bases()"
    strings = body_strings(spec)
    assert ("POST", "/api/messages/rcs/send", "options.cards.N.suggestions.N.text") in strings
    assert ("POST", "/api/contacts", "fields.N.value") in strings
    assert ("POST", "/api/stoplist/attach", "types.N") in strings


def test_a_body_string_that_is_not_text_is_a_422_naming_it_and_nothing_is_stored(
    env: Env, spec: dict[str, Any]
) -> None:
    before = env.snapshot()
    build = bases(env)
    cases = sorted(body_strings(spec))
    assert len(cases) > 50
    wrong: list[tuple[Any, ...]] = []
    for method, path, field in cases:
        for bad, message in NOT_TEXT.items():
            r = send(env, method, path, put(build[method, path](field), field, bad))
            key = key_of(field)
            expected = {"message": INVALID, "errors": {key: [message.format(shown(key))]}}
            if r.status_code != 422 or r.json() != expected:
                wrong.append((method, path, field, ascii(bad), r.status_code, r.text[:160]))
            if env.snapshot() != before:
                wrong.append((method, path, field, ascii(bad), "stored"))
                before = env.snapshot()
    assert not wrong, "\n".join(map(str, wrong))


def test_keys_and_unknown_fields_are_checked_too_and_the_fast_lane_with_a_token(env: Env) -> None:
    before = env.snapshot()
    base = bases(env)["POST", "/api/messages/rcs/send"]("options.text")
    r = send(env, "POST", "/api/messages/rcs/send", {**base, "extra": {"notes": ["ok", "a\x00"]}})
    assert r.json()["errors"] == {"extra.notes.1": ["The extra.notes.1 may not contain NUL characters."]}
    r = send(env, "POST", "/api/messages/rcs/send", {**base, "options": {"te\ud800xt": "Hi"}})
    assert r.status_code == 422
    assert r.json()["errors"] == {
        "options.te\\ud800xt": ["The options.te\\ud800xt may not contain unpaired UTF-16 surrogates."]
    }
    # Every fault is named, in the body's order.
    r = send(env, "POST", "/api/contacts", {"phone": "\ud800", "fields": [{"id": 1, "value": "\x00"}]})
    assert list(r.json()["errors"]) == ["phone", "fields.0.value"]
    token = env.server.token(env.api_key)
    r = env.c.post(
        "/api/messages/rcs/send",
        content=json.dumps(put(base, "options.text", "\ud800")).encode(),
        headers={**JSON, "Authorization": f"Bearer {token}", "X-API-KEY": ""},
    )
    assert r.status_code == 422 and list(r.json()["errors"]) == ["options.text"], r.text
    assert env.snapshot() == before


def test_text_that_only_looks_odd_is_still_text(env: Env) -> None:
    base = bases(env)["POST", "/api/messages/rcs/send"]("options.text")
    # An emoji escaped as its surrogate pair (json.dumps' default) is one character, not two faults.
    r = send(env, "POST", "/api/messages/rcs/send", put(base, "options.text", "Hi \U0001f600"))
    assert r.status_code == 200, r.text
    sent = env.c.get("/api/messages", params={"filter[id]": r.json()["data"]["id"]}).json()["data"]
    assert [m["rcs_options"]["text"] for m in sent] == ["Hi \U0001f600"]
    # A backslash followed by u0000 is six characters, not a NUL.
    r = env.c.post("/api/groups", json={"name": "a\\u0000b"})
    assert r.status_code == 201 and r.json()["data"]["name"] == "a\\u0000b", r.text


def test_message_text_that_is_only_whitespace_is_not_a_message(env: Env) -> None:
    before = env.snapshot()
    build = bases(env)
    cards = "options.cards.N.text"
    blanks = (" ", "   ", "\t\r\n", "\u00a0\u2003")
    # (field, the base to put it in (its route), key of the error, message)
    cases = [
        ("options.text", "The options must contain either text or cards.", "options"),
        ("alternative_channel.sms.text", "The alternative channel.sms.text field is required.", None),
        ("options.cards.N.suggestions.N.text", None, None),
    ]
    for path in ("/api/messages/rcs/send", "/api/campaigns/rcs/send", "/api/campaigns/rcs/send-groups"):
        for blank in blanks:
            for field, message, key in cases:
                r = send(env, "POST", path, put(build["POST", path](field), field, blank))
                key = key or key_of(field)
                message = message or f"The {shown(key)} field is required."
                assert r.status_code == 422, (path, field, repr(blank), r.text)
                assert r.json()["errors"] == {key: [message]}, (path, field, repr(blank))
            # A card without media whose text is blank has no content.
            card = {"title": "Title", "text": blank}
            r = send(env, "POST", path, put(build["POST", path](cards), "options.cards", [card]))
            assert r.json()["errors"] == {
                "options.cards.0.text": [
                    "The options.cards.0.text field is required when media is not present."
                ]
            }, (path, repr(blank))
    assert env.snapshot() == before
    # An optional text left blank is not given (as Laravel's TrimStrings makes it): the message goes out
    # without it, and text around whitespace is kept as it is.
    body = put(build["POST", "/api/messages/rcs/send"](cards), "options.cards.N.title", "  ")
    body = put(body, "options.cards.N.suggestions.N.postback_data", "\t")
    body = put(body, "options.cards.N.text", "  Spaced  ")
    r = send(env, "POST", "/api/messages/rcs/send", body)
    assert r.status_code == 200, r.text
    (message,) = env.c.get("/api/messages", params={"filter[id]": r.json()["data"]["id"]}).json()["data"]
    (card,) = message["rcs_options"]["cards"]
    assert not card.get("title") and card["text"] == "  Spaced  "
    assert not card["suggestions"][0].get("postback_data")


# ------------------------------------------------------------------ nesting


def with_nested(body: dict[str, Any], levels: int, kind: str = "[") -> bytes:
    """``body`` with an unknown field "x" holding arrays (or objects) ``levels`` deep, as JSON (built
    as text: json.dumps itself would run into the recursion limit)."""
    opening, closing = ("[", "]") if kind == "[" else ('{"a":', "}")
    head = json.dumps(body)[:-1]
    return f'{head}, "x": {opening * levels}1{closing * levels}}}'.encode()


def test_deep_nesting_is_a_422_on_every_route(env: Env, spec: dict[str, Any]) -> None:
    before = env.snapshot()
    build = bases(env)
    deep_raw = [
        b"[" * 5000,  # not even closed
        b'{"x":' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"x":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}",
    ]
    for path, method, operation in operations(spec):
        takes_body = "requestBody" in operation
        target = url(env, path, MISSING_ID if not takes_body else None)
        bodies = [
            *deep_raw,
            # Inside an unknown field of a well-formed body, one level past the limit, and far past
            # it but within what orjson parses (1024).
            *(
                with_nested(build[method, path](""), levels, kind)
                for levels in (MAX_DEPTH, 1000)
                for kind in ("[", "{")
                if takes_body
            ),
        ]
        for raw in bodies:
            r = env.c.request(method, target, content=raw, headers=JSON)
            if takes_body:
                assert r.status_code == 422, (method, path, raw[:20], r.status_code, r.text[:300])
                assert r.json() == {"message": INVALID, "errors": {"body": [TOO_DEEP]}}, (method, path)
            else:
                assert r.status_code < 500, (method, path, r.status_code)
    assert env.snapshot() == before


def test_nesting_up_to_the_limit_is_accepted(env: Env) -> None:
    base = bases(env)["POST", "/api/messages/rcs/send"]("options.text")
    # The body is one level, "x" the rest: MAX_DEPTH in all.
    for kind in ("[", "{"):
        body = {**base, "phone": {"number": f"38066123{ord(kind):04d}"}}
        r = env.c.post("/api/messages/rcs/send", content=with_nested(body, MAX_DEPTH - 1, kind), headers=JSON)
        assert r.status_code == 200, r.text
        r = env.c.post("/api/messages/rcs/send", content=with_nested(body, MAX_DEPTH, kind), headers=JSON)
        assert r.status_code == 422 and r.json()["errors"] == {"body": [TOO_DEEP]}


# ------------------------------------------------------------------ query and path parameters


def test_a_nul_in_any_query_parameter_is_a_422_naming_it(env: Env, spec: dict[str, Any]) -> None:
    before = env.snapshot()
    cases = parameters(spec, "query")
    names = {(path, name) for _, path, name, _ in cases}
    assert {("/api/messages", "filter[reference_id]"), ("/api/campaigns", "search[value]")} <= names
    wrong: list[tuple[Any, ...]] = []
    for method, path, name, _ in cases:
        for value in ("a\x00b", "\x00"):
            r = env.c.request(method, url(env, path), params={name: value})
            expected = {
                "message": INVALID,
                "errors": {name: [f"The {shown(name)} may not contain NUL characters."]},
            }
            if r.status_code != 422 or r.json() != expected:
                wrong.append((method, path, name, ascii(value), r.status_code, r.text[:160]))
    assert not wrong, "\n".join(map(str, wrong))
    # Parameters the document lists only by pattern, and parameter names.
    for params in ({"search_fields[0][field]": "phone", "search_fields[0][value]": "38\x00"}, {"a\x00": "1"}):
        r = env.c.get("/api/contacts/search", params=params)
        assert r.status_code == 422, r.text
        assert "NUL" in next(iter(r.json()["errors"].values()))[0]
    assert env.snapshot() == before


def test_every_integer_parameter_fits_64_bits(env: Env, spec: dict[str, Any]) -> None:
    before = env.snapshot()
    cases = [
        (method, path, name, where, *found)
        for where in ("query", "path")
        for method, path, name, schema in parameters(spec, where)
        if (found := integer_schema(schema)) is not None
    ]
    names = {(path, name) for _, path, name, *_ in cases}
    assert {("/api/messages", "filter[id]"), ("/api/messages", "filter[campaign_id]")} <= names
    assert ("/api/campaigns/{campaign_id}/stop", "campaign_id") in names
    wrong: list[tuple[Any, ...]] = []
    for method, path, name, where, schema, is_array in cases:
        # Documented bounds (so that clients know them), and the bounds the answers give.
        if schema.get("maximum", INT64_MAX + 1) > INT64_MAX or "minimum" not in schema:
            wrong.append((method, path, name, "documents no 64-bit bounds", schema))
        most, least = schema.get("maximum", INT64_MAX), schema.get("minimum", -(2**63))
        key = f"{name}.0" if is_array else name
        beyond = [
            (value, f"The {shown(key)} may not be greater than {most}.")
            for value in (INT64_MAX + 1, 2**64, 10**30)
        ]
        below = [(-(2**63) - 1, f"The {shown(key)} must be at least {least}.")]
        for value, message in (*beyond, *below, (most, None)):
            if where == "path":
                target, params = url(env, path, value), None
            else:
                target, params = url(env, path), {name: value}
            r = env.c.request(method, target, params=params)
            if message is None:  # the largest value allowed is a value like any other: found or not
                if r.status_code >= 500 or (r.status_code == 422 and key in r.json()["errors"]):
                    wrong.append((method, path, name, value, r.status_code, r.text[:160]))
            elif r.status_code != 422 or r.json() != {"message": INVALID, "errors": {key: [message]}}:
                wrong.append((method, path, name, value, r.status_code, r.text[:160]))
    assert not wrong, "\n".join(map(str, wrong))
    assert env.snapshot() == before
