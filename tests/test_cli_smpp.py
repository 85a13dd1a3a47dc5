"""`rcsgate connectors add-smpp`, `rcsgate senders set-connector` and `rcsgate routes …` as an operator
runs them (the CLI app on the test's database), and the change reaching a running server within 5 s
without a restart: the demo's SMS sender routed to an SMSC with the two commands."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from conftest import LiveServer, eventually
from rcsgate.services.demo import ensure_demo
from smpp_local import SmscThread
from test_cli_connectors import _upstream, cli

ADD = ("connectors", "add-smpp", "smsc1", "--host", "127.0.0.1", "--port", "2775", "--system-id", "rcsgate")


def test_smpp_connector_sender_and_route_commands(db_url: str) -> None:
    assert cli(db_url, "demo").returncode == 0
    added = cli(db_url, *ADD, "--password", "s3cret", "--window", "20", "--rate", "50", "--json")
    assert added.returncode == 0, added.stderr
    view = json.loads(added.stdout)
    assert view["kind"] == "smpp" and view["window"] == 20 and view["rate"] == 50
    assert view["long_messages"] == "udh" and view["bind"] == "transceiver"
    assert view["password"].startswith("sha256:")
    shown = cli(db_url, "connectors", "show", "smsc1")
    assert "s3cret" not in shown.stdout + added.stdout and view["password"] in shown.stdout
    # Refused settings name the option.
    for extra, words in (
        (("--password", "toolongpassword"), "--password"),
        (("--password", "pw", "--long-messages", "zip"), "--long-messages"),
        (("--password", "pw", "--error-class", "0x45=sometimes"), "--error-class"),
        (("--password", "pw", "--window", "0"), "--window"),
    ):
        bad = cli(db_url, *ADD[:2], "other", *ADD[3:], *extra)
        assert bad.returncode != 0 and words in bad.stderr, bad.stderr
    again = cli(db_url, *ADD, "--password", "pw")
    assert again.returncode != 0 and "exists already" in again.stderr
    # The demo's SMS sender (id 1) through the connector, and back.
    routed = cli(db_url, "senders", "set-connector", "1", "smsc1", "--json")
    assert json.loads(routed.stdout) == {"sender_id": 1, "connector": "smsc1"}
    assert "connector #" in cli(db_url, "senders", "list").stdout
    assert cli(db_url, "senders", "set-connector", "99", "smsc1").returncode != 0
    assert "not found" in cli(db_url, "senders", "set-connector", "1", "nope").stderr
    # Routes: prefix, order, failover list; an RBM or unknown connector is refused.
    assert cli(db_url, *ADD[:2], "smsc2", *ADD[3:], "--password", "pw").returncode == 0
    route = cli(db_url, "routes", "add", "--channel", "sms", "--prefix", "380", "smsc1", "smsc2", "--json")
    assert route.returncode == 0, route.stderr
    assert json.loads(route.stdout)["connectors"] == ["smsc1", "smsc2"]
    assert "#1 sms 380 -> smsc1 > smsc2" in cli(db_url, "routes", "list").stdout
    assert "exists already" in cli(db_url, "routes", "add", "--prefix", "380", "smsc2").stderr
    assert "not found" in cli(db_url, "routes", "add", "--prefix", "48", "ghost").stderr
    assert "channel" in cli(db_url, "routes", "add", "--channel", "rcs", "smsc1").stderr
    assert "prefix" in cli(db_url, "routes", "add", "--prefix", "38x", "smsc1").stderr
    # A connector in use cannot be removed; what uses it is named.
    busy = cli(db_url, "connectors", "remove", "smsc2")
    assert busy.returncode != 0 and "route 1" in busy.stderr
    assert cli(db_url, "routes", "remove", "1").returncode == 0
    assert cli(db_url, "routes", "list", "--json").stdout.strip() == "[]"
    assert cli(db_url, "connectors", "remove", "smsc2").returncode == 0
    assert cli(db_url, "senders", "set-connector", "1", "simulator").returncode == 0
    assert cli(db_url, "connectors", "remove", "smsc1").returncode == 0


def test_the_demo_sender_routed_by_two_commands_reaches_a_running_server_within_5_seconds(
    server_factory: Callable[..., LiveServer], db_url: str, tmp_path: Path
) -> None:
    srv = server_factory(run_workers=True)  # the default refresh period
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    api = httpx.Client(base_url=srv.base_url, headers={"X-API-KEY": demo.api_key}, timeout=10)
    with SmscThread() as smsc:
        add = cli(db_url, *ADD[:6], str(smsc.port), *ADD[7:], "--password", "pw")
        assert add.returncode == 0, add.stderr
        assert cli(db_url, "senders", "set-connector", "1", "smsc1").returncode == 0
        time.sleep(5)  # the promise: within 5 s, no restart
        r = api.post(
            "/api/messages/rcs/send",
            json={
                "phone": {"number": "380661239990"},
                "sender": "demo_agent",
                "options": {"text": "Hi"},
                "alternative_channel": {"sms": {"sender": "DemoSMS", "text": "Hi by SMS"}},
            },
        )
        assert r.status_code == 200, r.text
        rcs = int(r.json()["data"]["id"])

        def sms_id() -> int | None:
            m = api.get("/api/messages", params={"filter[id]": rcs}).json()["data"][0]
            ids = m["alternative_channels"]["sms"]["id"]
            return int(ids[0]) if ids else None

        sms = eventually(sms_id, timeout=10)
        assert eventually(lambda: srv.call(lambda db: _upstream(db, sms)), timeout=10) == "smsc1"
        assert eventually(lambda: smsc.on_loop(lambda s: len(s.submits)), timeout=10) == 1
