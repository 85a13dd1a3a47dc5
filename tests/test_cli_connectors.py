"""`rcsgate connectors …` and `rcsgate agents set-connector` as an operator runs them (the CLI app on
the test's database; real subprocesses for the change that must reach a running server without a
restart)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from conftest import LiveServer, eventually
from rbm_local import AGENT_ID, CLIENT_TOKEN, RbmThread
from rcsgate.cli import app
from rcsgate.services.demo import ensure_demo

RCSGATE = str(Path(sys.executable).parent / "rcsgate")
runner = CliRunner()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(db_url: str, *args: str) -> Ran:
    result = runner.invoke(app, list(args), env={"RCSGATE_DATABASE_URL": db_url})
    return Ran(result.exit_code, result.stdout, result.stderr)


def cli_process(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env["RCSGATE_DATABASE_URL"] = db_url.replace("sqlite+aiosqlite://", "sqlite://")
    return subprocess.run([RCSGATE, *args], env=env, capture_output=True, text=True, timeout=60)


def test_connectors_commands(db_url: str, tmp_path: Path) -> None:
    with RbmThread() as rbm:
        key = rbm.key()
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    assert cli(db_url, "demo").returncode == 0
    added = cli(
        db_url,
        "connectors",
        "add-rbm",
        "eu1",
        "--agent-id",
        AGENT_ID,
        "--service-account",
        str(key_file),
        "--webhook-token",
        CLIENT_TOKEN,
        "--json",
    )
    assert added.returncode == 0, added.stderr
    view = json.loads(added.stdout)
    assert view["name"] == "eu1" and view["kind"] == "rbm" and view["region"] == "europe"
    assert view["api_url"] == "https://europe-rcsbusinessmessaging.googleapis.com"
    assert view["token_uri"] == key["token_uri"] and view["events_url_path"] == "/api/upstream/rbm/eu1"
    assert view["service_account_key"].startswith("sha256:") and view["webhook_token"].startswith("sha256:")
    # Secrets never printed, whichever way the connector is shown.
    for args in (("list",), ("list", "--json"), ("show", "eu1"), ("show", "eu1", "--json")):
        out = cli(db_url, "connectors", *args)
        assert out.returncode == 0, out.stderr
        assert (
            "PRIVATE KEY" not in out.stdout
            and CLIENT_TOKEN not in out.stdout
            and key["private_key_id"] not in out.stdout
        )
    us = cli(
        db_url,
        "connectors",
        "add-rbm",
        "us1",
        "--agent-id",
        AGENT_ID,
        "--service-account",
        str(key_file),
        "--region",
        "us",
        "--json",
    )
    assert json.loads(us.stdout)["api_url"] == "https://us-rcsbusinessmessaging.googleapis.com"
    assert [v["name"] for v in json.loads(cli(db_url, "connectors", "list", "--json").stdout)] == [
        "eu1",
        "us1",
    ]

    # Refusals, each one line on stderr.
    dup = cli(
        db_url, "connectors", "add-rbm", "eu1", "--agent-id", AGENT_ID, "--service-account", str(key_file)
    )
    assert dup.returncode != 0 and "exists already" in dup.stderr
    bad_key = tmp_path / "bad.json"
    bad_key.write_text(json.dumps({"type": "service_account", "client_email": "x@y"}))
    refused = cli(
        db_url, "connectors", "add-rbm", "eu2", "--agent-id", AGENT_ID, "--service-account", str(bad_key)
    )
    assert refused.returncode != 0 and "private_key" in refused.stderr
    assert (
        cli(
            db_url,
            "connectors",
            "add-rbm",
            "Bad Name",
            "--agent-id",
            AGENT_ID,
            "--service-account",
            str(key_file),
        ).returncode
        != 0
    )
    assert (
        cli(
            db_url,
            "connectors",
            "add-rbm",
            "eu3",
            "--agent-id",
            AGENT_ID,
            "--service-account",
            str(key_file),
            "--region",
            "mars",
        ).returncode
        != 0
    )
    assert "not found" in cli(db_url, "connectors", "show", "nope").stderr

    # Routing an agent, and removal refused while it is in use.
    assert "not found" in cli(db_url, "agents", "set-connector", "1", "nope").stderr
    routed = cli(db_url, "agents", "set-connector", "1", "eu1", "--json")
    assert json.loads(routed.stdout) == {"agent_id": 1, "connector": "eu1"}
    assert json.loads(cli(db_url, "connectors", "show", "eu1", "--json").stdout)["agents"] == [1]
    in_use = cli(db_url, "connectors", "remove", "eu1")
    assert in_use.returncode != 0 and "in use by agent 1" in in_use.stderr
    assert (
        json.loads(cli(db_url, "agents", "set-connector", "1", "simulator", "--json").stdout)["connector"]
        == "simulator"
    )
    assert cli(db_url, "connectors", "remove", "eu1").returncode == 0
    assert [v["name"] for v in json.loads(cli(db_url, "connectors", "list", "--json").stdout)] == ["us1"]


def test_a_route_set_by_the_cli_reaches_a_running_server_within_5_seconds(
    server_factory: Callable[..., LiveServer], db_url: str, tmp_path: Path
) -> None:
    srv = server_factory(run_workers=True)  # default refresh period
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    api = httpx.Client(base_url=srv.base_url, headers={"X-API-KEY": demo.api_key}, timeout=10)

    def send(number: str) -> int:
        r = api.post(
            "/api/messages/rcs/send",
            json={"phone": {"number": number}, "sender": "demo_agent", "options": {"text": "Hi"}},
        )
        assert r.status_code == 200, r.text
        return int(r.json()["data"]["id"])

    def upstream(mid: int) -> Any:
        return srv.call(lambda db: _upstream(db, mid))

    first = send("380661230001")
    assert eventually(lambda: upstream(first)) == "simulator"
    with RbmThread() as rbm:
        key_file = rbm.key_file(tmp_path)
        rbm.on_loop(lambda r: r.set_webhook(f"{srv.base_url}/api/upstream/rbm/live"))
        assert (
            cli(
                db_url,
                "connectors",
                "add-rbm",
                "live",
                "--agent-id",
                AGENT_ID,
                "--service-account",
                str(key_file),
                "--api-url",
                rbm.url,
                "--webhook-token",
                CLIENT_TOKEN,
            ).returncode
            == 0
        )
        assert cli_process(db_url, "agents", "set-connector", "1", "live").returncode == 0
        time.sleep(5)  # the promise: within 5 s, no restart
        second = send("380661230002")
        assert eventually(lambda: upstream(second), timeout=10) == "live"
        assert eventually(lambda: rbm.journal(), timeout=10)[0]["phoneNumber"] == "+380661230002"


async def _upstream(db: Any, mid: int) -> str | None:
    from sqlalchemy import select

    from rcsgate.store.tables import messages

    async with db.read() as conn:
        return (
            await conn.execute(select(messages.c.upstream).where(messages.c.id == mid))
        ).scalar_one_or_none()
