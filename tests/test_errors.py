"""Every error is JSON {"message", "errors"}: 401, 404, 405, 413, 422, 429, 500, 503."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError, ProgrammingError

from conftest import LiveServer, ServerThread
from rcsgate.api.errors import install_error_handlers

INVALID = "The given data was invalid."


def assert_error_shape(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"message", "errors"}
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    return body


def test_unknown_route_and_wrong_method(server: LiveServer) -> None:
    with server.client() as c:
        assert assert_error_shape(c.get("/api/nothing-here"), 404)["message"] == "Not found."
        assert assert_error_shape(c.delete("/api/accounts/balance"), 405)["message"] == "Method not allowed."


def test_malformed_json_and_missing_fields_are_422(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/api/auth/login", content=b'{"api_key": ', headers={"content-type": "application/json"})
        body = assert_error_shape(r, 422)
        assert body == {
            "message": "The given data was invalid.",
            "errors": {"body": ["The request body is not valid JSON."]},
        }
        # Laravel's wording, as on every route: the attribute with its underscores shown as spaces.
        body = assert_error_shape(c.post("/api/auth/login", json={}), 422)
        assert body["errors"] == {"api_key": ["The api key field is required."]}
        # A body that is not an object reads as {}, as on every other route.
        body = assert_error_shape(c.post("/api/auth/login", json=[1, 2]), 422)
        assert body["errors"] == {"api_key": ["The api key field is required."]}
        body = assert_error_shape(c.post("/api/auth/login", json={"api_key": 5}), 422)
        assert body["errors"] == {"api_key": ["The api key must be a string."]}
        body = assert_error_shape(c.post("/api/auth/login", json={"api_key": "  "}), 422)
        assert body["errors"] == {"api_key": ["The api key field is required."]}
        body = assert_error_shape(c.post("/api/auth/login", json={"api_key": "k" * 201}), 422)
        assert body["errors"] == {"api_key": ["The api key may not be greater than 200 characters."]}


def test_body_over_the_limit_is_413(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(max_body_bytes=2048)
    with srv.client() as c:
        big = {"api_key": "x" * 4000}
        body = assert_error_shape(c.post("/api/auth/login", json=big), 413)
        assert body["message"] == "Request body too large."

        def chunks():  # type: ignore[no-untyped-def]
            # No content-length: the limit must hold for streamed bodies too.
            for _ in range(10):
                yield b"x" * 1000

        r = c.post("/api/auth/login", content=chunks(), headers={"content-type": "application/json"})
        assert_error_shape(r, 413)
        # Just under the limit is still processed normally.
        assert c.post("/api/auth/login", json={"api_key": "x" * 100}).status_code == 401


def test_rate_limit_is_429_with_retry_after(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(rate_limit="3/minute")
    _, key = srv.new_account()
    _, other_key = srv.new_account("other")
    with srv.client(headers={"X-API-KEY": key}) as c:
        for _ in range(3):
            assert c.get("/api/accounts/balance").status_code == 200
        r = c.get("/api/accounts/balance")
        body = assert_error_shape(r, 429)
        assert body["message"] == "Too Many Attempts."
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # The budget is per account.
        assert c.get("/api/accounts/balance", headers={"X-API-KEY": other_key}).status_code == 200


def test_unexpected_errors_are_500_without_internals() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail at /srv/app.py line 42")

    with ServerThread(app) as srv, httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as c:
        r = c.get("/boom")
    body = assert_error_shape(r, 500)
    assert body == {"message": "Server Error", "errors": {}}
    assert "secret" not in r.text


def test_database_unreachable_is_503_but_sql_bugs_are_500() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/down")
    async def down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connect to 10.0.0.5:5432 refused"))

    @app.get("/refused")
    async def refused() -> None:
        raise ConnectionRefusedError("connect to 10.0.0.5:5432 refused")

    @app.get("/bug")
    async def bug() -> None:
        raise ProgrammingError("SELECT nope FROM accounts", {}, Exception("no such column: nope"))

    with ServerThread(app) as srv, httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as c:
        for path in ("/down", "/refused"):
            r = c.get(path)
            body = assert_error_shape(r, 503)
            assert body["message"] == "Service temporarily unavailable."
            assert "10.0.0.5" not in r.text
            assert r.headers["retry-after"]
        r = c.get("/bug")
        assert_error_shape(r, 500)
        assert "nope" not in r.text


def _wrong_value(schema: dict[str, Any]) -> str | None:
    """A value a parameter's schema refuses, or None when it accepts any string."""
    for kind in (schema, *schema.get("anyOf", [])):
        if kind.get("type") == "integer" or kind.get("items", {}).get("type") == "integer":
            return "x"
        if "enum" in kind:
            return "not-a-choice"
        if "pattern" in kind:
            return "!"
        if "maxLength" in kind:
            return "x" * (int(kind["maxLength"]) + 1)
    return None


def test_query_path_and_header_errors_are_worded_like_body_errors(server: LiveServer) -> None:
    """One 422 formatter: Laravel's wording, as for body fields, for every query and path parameter of
    the OpenAPI document (so that a new one is covered) and for headers."""
    _, key = server.new_account()
    laravel = re.compile(r"The .+\.")
    with server.client(headers={"X-API-KEY": key}) as c:
        pinned = {
            ("/api/messages", "page[limit]", "1"): "The page[limit] must be at least 15.",
            ("/api/messages", "page[limit]", "501"): "The page[limit] may not be greater than 500.",
            ("/api/campaigns", "page[limit]", "15"): "The page[limit] must be at least 30.",
            ("/api/messages", "sort", "nope"): "The selected sort is invalid.",
            ("/api/messages", "filter[id]", "x"): "The filter[id] must be an integer.",
            ("/api/messages", "filter[reference_id]", "r" * 33): (
                "The filter[reference id] may not be greater than 32 characters."
            ),
            ("/api/campaigns", "filter[type]", "fax"): "The filter[type] format is invalid.",
            ("/api/contacts", "groups[]", "x"): "The groups[].0 must be an integer.",
        }
        for (path, name, value), message in pinned.items():
            r = c.get(path, params={name: value})
            key_ = "groups[].0" if name == "groups[]" else name
            assert r.json() == {"message": INVALID, "errors": {key_: [message]}}, (path, name, r.text)
        r = c.get("/api/senders")
        assert r.json() == {"message": INVALID, "errors": {"type": ["The type field is required."]}}
        r = c.get("/api/campaigns/x/detail")
        assert r.json() == {
            "message": INVALID,
            "errors": {"campaign_id": ["The campaign id must be an integer."]},
        }
        # A header: the same words on the single-send fast lane (checked by hand) and on campaigns.
        long_key = {"Idempotency-Key": "k" * 256}
        too_long = {"Idempotency-Key": ["The Idempotency-Key may not be greater than 255 characters."]}
        for path in ("/api/messages/rcs/send", "/api/campaigns/rcs/send"):
            r = c.post(path, json={}, headers=long_key)
            assert r.status_code == 422 and r.json()["errors"] == too_long, (path, r.text)

        spec = c.get("/openapi.json").json()
        checked = 0
        for path, methods in spec["paths"].items():
            for method, operation in methods.items():
                for parameter in operation.get("parameters", []):
                    wrong = _wrong_value(parameter.get("schema", {}))
                    if wrong is None or parameter["in"] not in ("query", "path"):
                        continue
                    target = path
                    params = {parameter["name"]: wrong}
                    if parameter["in"] == "path":
                        target, params = path.replace("{" + parameter["name"] + "}", wrong), {}
                    target = re.sub(r"\{[^}]+\}", "1", target)
                    r = c.request(method.upper(), target, params=params)
                    assert r.status_code == 422, (method, path, parameter["name"], r.status_code, r.text)
                    for field, messages in r.json()["errors"].items():
                        for text in messages:
                            assert laravel.fullmatch(text) and "should" not in text, (path, field, text)
                    checked += 1
        assert checked > 30
