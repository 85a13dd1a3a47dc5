"""Signing in to the web console: the form, session cookies, CSRF, slowed-down failures, the users CLI
and the demo user, against a real server."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conftest import LiveServer, run
from console_support import PASSWORD, account_with_user, cheap_hashes, csrf_of, sign_in
from rcsgate.cli import app as cli_app
from rcsgate.clock import ManualClock
from rcsgate.domain.errors import RateLimited, Unauthenticated
from rcsgate.services import console_users
from rcsgate.store.db import Database

__all__ = ["cheap_hashes"]
pytestmark = pytest.mark.usefixtures("cheap_hashes")


def _cookie_header(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, response.headers
    return found[-1]


def test_sign_in_session_and_sign_out(server: LiveServer) -> None:
    _, api_key = account_with_user(server, "acme", "ops@example.com")
    with server.client() as c:
        r = c.get("/console/messages?x=1")
        assert (
            r.status_code == 303 and r.headers["location"] == "/console/login?next=/console/messages%3Fx%3D1"
        )
        r = c.get(
            "/console/",
            headers={"HX-Request": "true", "HX-Current-URL": f"{server.base_url}/console/billing"},
        )
        assert r.status_code == 401 and r.headers["hx-redirect"] == "/console/login?next=/console/billing"

        page = c.get("/console/login?next=/console/billing")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for field in (
            'name="email"',
            'name="password"',
            'type="hidden" name="csrf_token"',
            'value="/console/billing"',
        ):
            assert field in page.text
        pre = _cookie_header(page, "rcsgate_console_csrf")
        assert "HttpOnly" in pre and "SameSite=lax" in pre and "Secure" not in pre
        token = csrf_of(page.text)

        wrong = c.post(
            "/console/login", data={"email": "ops@example.com", "password": "nope nope", "csrf_token": token}
        )
        assert wrong.status_code == 401 and "The email or password is incorrect." in wrong.text
        assert "rcsgate_console=" not in wrong.headers.get("set-cookie", "")

        r = c.post(
            "/console/login",
            data={
                "email": " OPS@example.com",
                "password": PASSWORD,
                "csrf_token": token,
                "next": "/console/billing",
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/console/billing"
        cookie = _cookie_header(r, "rcsgate_console")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain HTTP
        session = c.cookies["rcsgate_console"]

        home = c.get("/console/")
        assert home.status_code == 200 and "ops@example.com" in home.text
        # The session's own token now, not the sign-in form's.
        assert csrf_of(home.text) != token
        # A console session is no API credential, and an API key no console session.
        assert c.get("/api/accounts/balance").status_code == 401

        # Off-site destinations are ignored.
        again = c.get("/console/login?next=//evil.example/x")
        assert again.status_code == 303 and again.headers["location"] == "/console/"

        assert c.post("/console/logout").status_code == 403  # no CSRF token
        out = c.post("/console/logout", data={"csrf_token": csrf_of(home.text)})
        assert out.status_code == 303 and out.headers["location"] == "/console/login"
    # The signed-out session's cookie is dead, even replayed.
    with server.client(cookies={"rcsgate_console": session}) as c:
        assert c.get("/console/").status_code == 303
    with server.client(headers={"X-API-KEY": api_key}) as c:
        assert c.get("/console/").status_code == 303
    # Behind a TLS-terminating proxy (uvicorn trusts X-Forwarded-Proto from loopback), cookies are Secure.
    with server.client(headers={"X-Forwarded-Proto": "https"}) as c:
        page = c.get("/console/login")
        assert "Secure" in _cookie_header(page, "rcsgate_console_csrf")
        # httpx keeps Secure cookies for https: hand it back as the browser would over TLS.
        pre = page.headers["set-cookie"].split(";", 1)[0]
        r = c.post(
            "/console/login",
            data={"email": "ops@example.com", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
            headers={"Cookie": pre},
        )
        assert r.status_code == 303
        assert "Secure" in _cookie_header(r, "rcsgate_console")


def test_every_post_needs_the_csrf_token(server: LiveServer) -> None:
    account_with_user(server, "acme", "ops@example.com")
    with server.client() as c:
        page = c.get("/console/login")
        # The sign-in form without its token, or with another browser's.
        form = {"email": "ops@example.com", "password": PASSWORD}
        assert c.post("/console/login", data=form).status_code == 403
        assert c.post("/console/login", data={**form, "csrf_token": "x" * 43}).status_code == 403
        assert c.post("/console/login", data={**form, "csrf_token": csrf_of(page.text)}).status_code == 303
    with server.client() as anon:
        # A post without a session (expired, signed out in another tab) asks to sign in first, then
        # to come back to the page it came from.
        r = anon.post(
            "/console/developers/keys", headers={"Referer": f"{server.base_url}/console/developers"}
        )
        assert r.status_code == 303 and r.headers["location"] == "/console/login?next=/console/developers"
        r = anon.post("/console/developers/keys", headers={"HX-Request": "true"})
        assert r.status_code == 401 and r.headers["hx-redirect"] == "/console/login?next=/console/"
    with closing(sign_in(server, "ops@example.com")) as c:
        for data, headers in (({}, {}), ({"csrf_token": "forged"}, {}), ({}, {"X-CSRF-Token": "forged"})):
            r = c.post("/console/developers/keys", data={"label": "x", **data}, headers=headers)
            assert r.status_code == 403 and "did not come from this site" in r.text
        r = c.post(
            "/console/developers/keys",
            data={"label": "by-header"},
            headers={"X-CSRF-Token": c.csrf, "HX-Request": "true"},  # type: ignore[attr-defined]
        )
        assert r.status_code == 200 and "by-header" in r.text
        r = c.post("/console/developers/keys", data={"label": "by-field", "csrf_token": c.csrf})  # type: ignore[attr-defined]
        assert r.status_code == 200 and "by-field" in r.text


def test_failed_sign_ins_are_slowed_down(server: LiveServer) -> None:
    account_with_user(server, "acme", "ops@example.com")
    with server.client() as c:
        token = csrf_of(c.get("/console/login").text)

        def attempt(password: str) -> httpx.Response:
            return c.post(
                "/console/login", data={"email": "ops@example.com", "password": password, "csrf_token": token}
            )

        for _ in range(console_users.FREE_FAILURES["email"]):
            assert attempt("wrong password").status_code == 401
        # Blocked now: even the right password is refused, without being checked.
        r = attempt(PASSWORD)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "Too many failed sign-ins" in r.text
        server.clock.advance(1)
        assert attempt("wrong password").status_code == 401  # the 6th failure: 2 s
        r = attempt(PASSWORD)
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        server.clock.advance(2)
        assert attempt(PASSWORD).status_code == 303
    # A success forgets the email's failures: the next failure is the first again.
    with server.client() as c:
        token = csrf_of(c.get("/console/login").text)
        for _ in range(console_users.FREE_FAILURES["email"]):
            assert attempt("wrong password").status_code == 401


def test_failures_from_one_address_or_for_unknown_emails_are_slowed_down(db_url: str) -> None:
    clock = ManualClock()

    async def main(db: Database) -> None:
        from rcsgate.services import accounts

        account = await accounts.create_account(db, clock, name="acme")
        await console_users.create_user(
            db, clock, account_id=account.id, email="a@example.com", password=PASSWORD
        )
        for n in range(console_users.FREE_FAILURES["ip"]):
            with pytest.raises(Unauthenticated):
                await console_users.sign_in(
                    db, clock, email=f"u{n}@example.com", password="x" * 8, client="10.0.0.9"
                )
        with pytest.raises(RateLimited):
            await console_users.sign_in(
                db, clock, email="a@example.com", password=PASSWORD, client="10.0.0.9"
            )
        # Another address is not held up; and after a quiet spell, the count starts again.
        await console_users.sign_in(db, clock, email="a@example.com", password=PASSWORD, client="10.0.0.8")
        clock.advance(timedelta(minutes=16))
        with pytest.raises(Unauthenticated):
            await console_users.sign_in(
                db, clock, email="u0@example.com", password="x" * 8, client="10.0.0.9"
            )
        await console_users.sign_in(db, clock, email="a@example.com", password=PASSWORD, client="10.0.0.9")

    run(main, db_url)


def test_disabling_or_a_new_password_ends_sessions(server: LiveServer) -> None:
    account_with_user(server, "acme", "ops@example.com")
    c = sign_in(server, "ops@example.com")
    server.call(
        lambda db: console_users.set_password(
            db, server.clock, email="ops@example.com", password="another pass"
        )
    )
    assert c.get("/console/").status_code == 303
    c = sign_in(server, "ops@example.com", "another pass")
    server.call(
        lambda db: console_users.set_disabled(db, server.clock, email="ops@example.com", disabled=True)
    )
    assert c.get("/console/").status_code == 303
    with server.client() as anon:
        token = csrf_of(anon.get("/console/login").text)
        r = anon.post(
            "/console/login",
            data={"email": "ops@example.com", "password": "another pass", "csrf_token": token},
        )
        assert r.status_code == 401
    server.call(
        lambda db: console_users.set_disabled(db, server.clock, email="ops@example.com", disabled=False)
    )
    sign_in(server, "ops@example.com", "another pass").close()
    # Sessions end after 12 hours without a request.
    c = sign_in(server, "ops@example.com", "another pass")
    server.clock.advance(console_users.SESSION_IDLE + timedelta(seconds=1))
    assert c.get("/console/").status_code == 303


# ------------------------------------------------------------------ the CLI


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Callable[..., object]:
    runner = CliRunner()
    env = {"RCSGATE_DATABASE_URL": db_url, "RCSGATE_VAR_DIR": str(tmp_path / "var"), "RCSGATE_PORT": "8080"}

    def invoke(*args: str, input: str | None = None, ok: bool = True) -> object:
        result = runner.invoke(cli_app, list(args), env=env, input=input)
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    return invoke


def test_users_cli(cli: Callable[..., object], db_url: str) -> None:
    import json

    created = json.loads(cli("accounts", "create", "Acme", "--no-key", "--json").stdout)  # type: ignore[attr-defined]
    account = str(created["id"])
    r = cli(
        "users",
        "create",
        "--account",
        account,
        "--email",
        "Ops@Example.com",
        "--password-stdin",
        "--json",
        input="s3cret pass\n",
    )
    user = json.loads(r.stdout)  # type: ignore[attr-defined]
    assert user["email"] == "ops@example.com" and user["account_id"] == int(account) and user["active"]
    # Stored as an argon2id hash, never as given.
    stored = run(lambda db: _hash_of(db, "ops@example.com"), db_url)
    assert stored.startswith("$argon2id$") and "s3cret" not in stored

    dup = cli(
        "users",
        "create",
        "--account",
        account,
        "--email",
        "ops@example.com",
        "--password-stdin",
        input="another one\n",
        ok=False,
    )
    assert dup.exit_code == 1 and "already exists" in dup.stderr  # type: ignore[attr-defined]
    short = cli(
        "users",
        "create",
        "--account",
        account,
        "--email",
        "b@example.com",
        "--password-stdin",
        input="short\n",
        ok=False,
    )
    assert short.exit_code == 1 and "8 to 1024 characters" in short.stderr  # type: ignore[attr-defined]
    missing = cli(
        "users",
        "create",
        "--account",
        "999",
        "--email",
        "c@example.com",
        "--password-stdin",
        input="long enough\n",
        ok=False,
    )
    assert missing.exit_code == 1 and "Account 999 was not found" in missing.stderr  # type: ignore[attr-defined]
    no_stdin = cli("users", "create", "--account", account, "--email", "d@example.com", ok=False)
    assert no_stdin.exit_code == 1 and "--password-stdin" in no_stdin.stderr  # type: ignore[attr-defined]

    assert "ops@example.com account #" in cli("users", "list").stdout  # type: ignore[attr-defined]
    cli("users", "disable", "ops@example.com")
    listed = json.loads(cli("users", "list", "--account", account, "--json").stdout)  # type: ignore[attr-defined]
    assert [u["active"] for u in listed] == [False]
    cli("users", "enable", "ops@example.com")
    cli("users", "set-password", "ops@example.com", "--password-stdin", input="brand new pass\n")
    clock = ManualClock()
    session = run(
        lambda db: console_users.sign_in(db, clock, email="ops@example.com", password="brand new pass"),
        db_url,
    )
    assert session.user.account_id == int(account)
    gone = cli("users", "disable", "nobody@example.com", ok=False)
    assert gone.exit_code == 1 and "not found" in gone.stderr  # type: ignore[attr-defined]


async def _hash_of(db: Database, email: str) -> str:
    from rcsgate.store import console as store

    async with db.read() as conn:
        row = await store.user_by_email(conn, email)
    assert row is not None
    return row.password_hash


def test_demo_prints_the_console_user_once_and_it_signs_in(
    cli: Callable[..., object], server_factory: Callable[..., LiveServer]
) -> None:
    first = cli("demo").stdout  # type: ignore[attr-defined]
    line = re.search(
        r"^Console: http://127\.0\.0\.1:8080/console/  user: demo@example\.com  password: (\S+)$", first, re.M
    )
    assert line, first
    password = line.group(1)
    second = cli("demo").stdout  # type: ignore[attr-defined]
    assert "Console: http://127.0.0.1:8080/console/  user: demo@example.com  (its password" in second
    assert "password: " not in second and password not in second
    server = server_factory()
    with closing(sign_in(server, "demo@example.com", password)) as c:
        assert "demo@example.com" in c.get("/console/billing").text
