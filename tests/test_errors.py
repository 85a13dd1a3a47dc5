"""Every error is JSON {"message", "errors"}: 401, 404, 405, 413, 422, 429, 500, 503."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError, ProgrammingError

from conftest import LiveServer, ServerThread
from rcsgate.api.errors import install_error_handlers


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
        body = assert_error_shape(c.post("/api/auth/login", json={}), 422)
        assert body["errors"] == {"api_key": ["The api_key field is required."]}
        body = assert_error_shape(c.post("/api/auth/login", json=[1, 2]), 422)
        assert list(body["errors"]) == ["body"]
        body = assert_error_shape(c.post("/api/auth/login", json={"api_key": 5}), 422)
        assert list(body["errors"]) == ["api_key"]


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
