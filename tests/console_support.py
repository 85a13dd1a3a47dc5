"""Helpers for the web console's tests: users with cheap password hashes, and signing in with httpx."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from argon2 import PasswordHasher

from conftest import LiveServer
from rcsgate.services import accounts, console_users

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id at its smallest cost: the servers run in this process, so they hash with it too."""
    monkeypatch.setattr(
        console_users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    console_users._dummy_hash.cache_clear()
    yield
    console_users._dummy_hash.cache_clear()


def new_user(server: LiveServer, account_id: int, email: str, password: str = PASSWORD) -> int:
    user = server.call(
        lambda db: console_users.create_user(
            db, server.clock, account_id=account_id, email=email, password=password
        )
    )
    return user.id


def account_with_user(server: LiveServer, name: str, email: str, *, balance: str = "100") -> tuple[int, str]:
    """An account with funds, a live API key and a console user: (account id, api key)."""
    account_id, key = server.new_account(name, balance=balance)
    new_user(server, account_id, email)
    return account_id, key


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, html[:2000]
    return found.group(1)


def sign_in(
    server: LiveServer, email: str, password: str = PASSWORD, **client_options: object
) -> httpx.Client:
    """A client holding a signed-in session (its cookies), and the session's CSRF token as
    ``client.csrf`` (read from a page's forms)."""
    client = server.client(**client_options)  # type: ignore[arg-type]
    page = client.get("/console/login")
    assert page.status_code == 200, page.text
    r = client.post(
        "/console/login", data={"email": email, "password": password, "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 303, r.text
    home = client.get("/console/")
    assert home.status_code == 200, home.text
    client.csrf = csrf_of(home.text)  # type: ignore[attr-defined]
    return client


def topup(server: LiveServer, account_id: int, amount: str) -> None:
    server.call(lambda db: accounts.topup(db, server.clock, account_id=account_id, amount=amount))
