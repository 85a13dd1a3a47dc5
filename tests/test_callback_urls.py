"""Callback URLs webhooks could never be sent to are refused when accepted (422), not dropped at send
time: on the three send endpoints and `rcsgate accounts set-callback-url`. Link-local and cloud
metadata hosts stay refused when RCSGATE_WEBHOOKS_ALLOW_PRIVATE=true opens loopback and private ones."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conftest import LiveServer, run
from rcsgate.cli import app as cli_app
from rcsgate.clock import ManualClock
from rcsgate.services import accounts
from rcsgate.services.demo import ensure_demo
from rcsgate.store import accounts as account_store
from rcsgate.webhooks.http_delivery import make_client, post_webhook

# Loopback, private and local names, in the spellings resolvers accept.
PRIVATE = [
    "http://127.0.0.1:8080/hook",
    "http://127.1/hook",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.1/",
    "http://192.168.1.10/",
    "http://localhost:8000/",
    "http://redis:6379/",
]
# Refused whatever RCSGATE_WEBHOOKS_ALLOW_PRIVATE says.
NEVER = [
    "http://169.254.169.254/latest/meta-data",
    "http://2852039166/",
    "http://169.254.43518/",
    "http://0xa9fea9fe/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]/",
    "http://metadata.google.internal/computeMetadata/v1/",
]
# Public literals, and names: not resolved when accepted (.invalid never resolves).
PUBLIC = ["https://hooks.example.com/rcs", "http://93.184.216.34/hook", "https://hooks.rcsgate.invalid/x"]

SINGLE = "/api/messages/rcs/send"
PHONES = "/api/campaigns/rcs/send"
GROUPS = "/api/campaigns/rcs/send-groups"


def _body(path: str, url: str, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {"sender": "demo_agent", "options": {"text": "Hi"}, "callback_url": url}
    if path == SINGLE:
        body["phone"] = {"number": f"38066124{n:04d}"}
    elif path == PHONES:
        body["phones"] = [{"number": f"38066125{n:04d}"}]
    else:
        body["groups"] = [999]  # nobody's group: validation of the body comes first
    return body


def _api(server: LiveServer) -> httpx.Client:
    demo = server.call(lambda db: ensure_demo(db, server.clock, var_dir=server.settings.var_dir))
    return httpx.Client(base_url=server.base_url, headers={"X-API-KEY": demo.api_key}, timeout=10)


def _assert_refused(api: httpx.Client, urls: list[str], start: int) -> None:
    for n, url in enumerate(urls, start):
        for path in (SINGLE, PHONES, GROUPS):
            r = api.post(path, json=_body(path, url, n))
            assert r.status_code == 422, (path, url, r.text)
            errors = r.json()["errors"]
            assert list(errors) == ["callback_url"], (path, url, errors)
            assert errors["callback_url"][0].startswith("The callback url host "), errors


def _assert_accepted(api: httpx.Client, urls: list[str], start: int) -> None:
    for n, url in enumerate(urls, start):
        for path in (SINGLE, PHONES):
            r = api.post(path, json=_body(path, url, n))
            assert r.status_code == 200, (path, url, r.text)
        r = api.post(GROUPS, json=_body(GROUPS, url, n))
        assert "callback_url" not in r.json().get("errors", {}), (url, r.text)


def test_refused_at_accept_time_when_private_is_not_allowed(
    server_factory: Callable[..., LiveServer],
) -> None:
    api = _api(server_factory(webhooks_allow_private=False))
    _assert_refused(api, PRIVATE + NEVER, 0)
    r = api.post(SINGLE, json=_body(SINGLE, "http://127.1/hook", 99))
    assert r.json() == {
        "message": "The given data was invalid.",
        "errors": {
            "callback_url": [
                "The callback url host '127.1' (127.0.0.1) is a loopback address; "
                "webhooks are only sent to public addresses."
            ]
        },
    }
    _assert_accepted(api, PUBLIC, 50)


def test_link_local_refused_even_when_private_is_allowed(server: LiveServer) -> None:
    assert server.settings.webhooks_allow_private
    api = _api(server)
    _assert_refused(api, NEVER, 0)
    r = api.post(SINGLE, json=_body(SINGLE, "http://169.254.169.254/latest/meta-data", 99))
    assert r.json()["errors"] == {
        "callback_url": [
            "The callback url host 169.254.169.254 is a link-local address; webhooks are never sent there."
        ]
    }
    _assert_accepted(api, PRIVATE + PUBLIC, 50)


@pytest.mark.parametrize("allow_private", [False, True])
def test_cli_set_callback_url(db_url: str, tmp_path: Path, allow_private: bool) -> None:
    async def create(db: Any) -> int:
        return (await accounts.create_account(db, ManualClock(), name="acme")).id

    account_id = run(create, db_url)
    env = {
        "RCSGATE_DATABASE_URL": db_url,
        "RCSGATE_VAR_DIR": str(tmp_path / "var"),
        "RCSGATE_WEBHOOKS_ALLOW_PRIVATE": str(allow_private).lower(),
    }

    def set_url(url: str) -> Any:
        return CliRunner().invoke(cli_app, ["accounts", "set-callback-url", str(account_id), url], env=env)

    def stored() -> str | None:
        async def read(db: Any) -> str | None:
            async with db.read() as conn:
                account = await account_store.get_account(conn, account_id)
            assert account is not None
            return account.rcs_callback_url

        return run(read, db_url)

    for url in PUBLIC:
        assert set_url(url).exit_code == 0
        assert stored() == url
    for url in PRIVATE:
        result = set_url(url)
        assert (result.exit_code == 0) is allow_private, (url, result.output)
        if not allow_private:
            assert "callback_url: The callback url host" in result.output
    for url in NEVER:
        result = set_url(url)
        assert result.exit_code == 1, (url, result.output)
        assert "callback_url: The callback url host" in result.output
    assert stored() == (PRIVATE[-1] if allow_private else PUBLIC[-1])


def test_send_time_refuses_link_local_when_private_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A link-local URL stored before this rule (or written to the database by hand), or a name that
    resolves to a link-local address, is never posted to: delivery gives up without connecting."""

    async def getaddrinfo(self: Any, host: str, port: int, **kwargs: Any) -> list[Any]:
        assert host == "imds.rcsgate.test", host
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("169.254.169.254", port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    urls = [*NEVER, "http://imds.rcsgate.test/latest/meta-data"]

    async def scenario() -> list[Any]:
        client = make_client()
        try:
            return [
                await asyncio.wait_for(
                    post_webhook(client, url=url, body=b"{}", headers={}, timeout_s=2, allow_private=True), 5
                )
                for url in urls
            ]
        finally:
            await client.close()

    for url, result in zip(urls, asyncio.run(scenario()), strict=True):
        assert result.outcome == "give_up", (url, result)
        assert result.status_code is None
        assert "never sent there" in (result.error or ""), result
