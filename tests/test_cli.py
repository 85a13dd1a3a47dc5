"""The operator CLI, run as real commands against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rcsgate.cli import app

runner = CliRunner()


@pytest.fixture
def cli(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"RCSGATE_DATABASE_URL": db_url, "RCSGATE_VAR_DIR": str(tmp_path / "var")}

    def invoke(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args), env=env)
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    return invoke


def as_json(result) -> object:  # type: ignore[no-untyped-def]
    return json.loads(result.stdout)


def test_demo_is_idempotent_and_prints_a_working_key(cli) -> None:  # type: ignore[no-untyped-def]
    first = as_json(cli("demo", "--json"))
    second = as_json(cli("demo", "--json"))
    # The console user's password only by the run that created the user (test_console_auth.py signs in).
    assert first.pop("console_user") == "demo@example.com" and len(first.pop("console_password")) >= 16
    assert first.pop("console_url").endswith("/console/")
    assert first == second
    assert set(first) == {"account_id", "api_key", "agent", "sms_sender"}
    assert first["api_key"].startswith("live_")
    assert first["agent"] == "demo_agent" and first["sms_sender"] == "DemoSMS"
    accounts = as_json(cli("accounts", "list", "--json"))
    assert [a["name"] for a in accounts] == ["demo"]
    assert accounts[0]["balance"] == "100.0000000" and accounts[0]["currency"] == "EUR"
    assert len(as_json(cli("keys", "list", str(first["account_id"]), "--json"))) == 1
    assert len(as_json(cli("agents", "list", "--json"))) == 1
    assert len(as_json(cli("senders", "list", "--json"))) == 1
    shown = as_json(cli("tariffs", "show", "1", "--json"))
    kinds = {(p["country"], p["channel"], p["kind"]) for p in shown["prices"]}
    for country in ("UA", "PL", "DE", "GB", "US"):
        for channel, kind in (("rcs", "text"), ("rcs", "single_card"), ("rcs", "carousel"), ("sms", "sms")):
            assert (country, channel, kind) in kinds
    text = cli("demo").stdout
    assert f"API key: {first['api_key']}" in text
    assert "curl" in text


def test_demo_replaces_a_revoked_key(cli) -> None:  # type: ignore[no-untyped-def]
    first = as_json(cli("demo", "--json"))
    key_id = as_json(cli("keys", "list", str(first["account_id"]), "--json"))[0]["id"]
    cli("keys", "revoke", str(key_id))
    second = as_json(cli("demo", "--json"))
    assert second["api_key"] != first["api_key"]
    assert second["account_id"] == first["account_id"]


def test_account_lifecycle(cli) -> None:  # type: ignore[no-untyped-def]
    created = as_json(cli("accounts", "create", "Acme", "--currency", "usd", "--credit", "10.5", "--json"))
    account_id = str(created["id"])
    assert created["currency"] == "USD" and created["credit_limit"] == "10.5000000"
    assert created["api_key"].startswith("live_")
    assert as_json(cli("accounts", "topup", account_id, "25.1234567", "--json"))["balance"] == "25.1234567"
    assert (
        as_json(cli("accounts", "topup", "--json", account_id, "--", "-0.1234567"))["balance"] == "25.0000000"
    )
    assert as_json(cli("accounts", "set-credit", account_id, "0", "--json"))["credit_limit"] == "0.0000000"
    url = "https://hooks.example.com/rcs"
    assert as_json(cli("accounts", "set-callback-url", account_id, url, "--json"))["rcs_callback_url"] == url
    assert as_json(cli("accounts", "set-callback-url", account_id, "", "--json"))["rcs_callback_url"] is None
    shown = as_json(cli("accounts", "show", account_id, "--json"))
    assert shown["balance"] == "25.0000000"
    secret = as_json(cli("accounts", "webhook-secret", account_id, "--json"))["webhook_secret"]
    rotated = as_json(cli("accounts", "webhook-secret", account_id, "--rotate", "--json"))["webhook_secret"]
    assert secret.startswith("whsec_") and rotated.startswith("whsec_") and rotated != secret
    test_acc = as_json(cli("accounts", "create", "Sandbox", "--mode", "test", "--json"))
    assert test_acc["mode"] == "test" and test_acc["api_key"].startswith("test_")


def test_keys_agents_senders_tariffs(cli) -> None:  # type: ignore[no-untyped-def]
    account_id = str(as_json(cli("accounts", "create", "Acme", "--no-key", "--json"))["id"])
    assert as_json(cli("keys", "list", account_id, "--json")) == []
    key = as_json(cli("keys", "create", account_id, "--label", "ci", "--json"))
    listed = as_json(cli("keys", "list", account_id, "--json"))
    assert listed[0]["prefix"] == key["api_key"][:9] and listed[0]["revoked_at"] is None
    assert key["api_key"] not in cli("keys", "list", account_id).stdout
    revoked = as_json(cli("keys", "revoke", str(key["id"]), "--json"))
    assert revoked["revoked_at"] is not None

    agent = as_json(cli("agents", "create", account_id, "acme_agent", "--country", "de", "--json"))
    assert agent["country"] == "DE" and agent["status"] == "active"
    assert as_json(cli("agents", "set-status", str(agent["id"]), "blocked", "--json"))["status"] == "blocked"
    assert len(as_json(cli("agents", "list", "--account", account_id, "--json"))) == 1

    sender = as_json(cli("senders", "create", account_id, "AcmeSMS", "--default", "--json"))
    assert sender["is_default"] is True

    assert as_json(cli("tariffs", "create", "5", "Standard", "--default", "--json"))["is_default"] is True
    price = as_json(cli("tariffs", "set-price", "5", "rcs", "carousel", "ua", "0.05", "--json"))
    assert price["price"] == "0.0500000" and price["country"] == "UA"
    cli("tariffs", "set-price", "5", "rcs", "carousel", "UA", "0.06")
    shown = as_json(cli("tariffs", "show", "5", "--json"))
    assert shown["prices"] == [{"channel": "rcs", "kind": "carousel", "country": "UA", "price": "0.0600000"}]
    cli("tariffs", "assign", account_id, "5", "--default")
    assert [t["code"] for t in as_json(cli("tariffs", "list", "--json"))] == [5]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accounts", "show", "999"], "Account 999 was not found."),
        (["accounts", "topup", "999", "5"], "Account 999 was not found."),
        (["accounts", "create", "X", "--currency", "EURO"], "currency"),
        (["accounts", "create", "X", "--mode", "prod"], "mode must be live or test"),
        (["accounts", "create", "X", "--timezone", "Mars/Base"], "unknown time zone"),
        (["keys", "revoke", "999"], "API key 999 was not found."),
        (["agents", "set-status", "999", "active"], "RCS agent 999 was not found."),
        (["tariffs", "set-price", "999", "rcs", "text", "UA", "1"], "Tariff 999 was not found."),
    ],
)
def test_bad_input_is_one_line_and_nonzero(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args, ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_value_errors_of_created_objects(cli) -> None:  # type: ignore[no-untyped-def]
    account_id = str(as_json(cli("accounts", "create", "Acme", "--no-key", "--json"))["id"])
    cases = [
        (["accounts", "topup", account_id, "1.00000001"], "more than 7 decimal places"),
        (["accounts", "topup", account_id, "abc"], "not an amount"),
        (["accounts", "set-callback-url", account_id, "ftp://x"], "http or https"),
        (["accounts", "set-callback-url", account_id, "https://x.com/" + "a" * 100], "100 characters"),
        (["agents", "create", account_id, "a", "--country", "Ukraine"], "ISO 3166-1"),
        (["senders", "create", account_id, "AB"], "3-11 letters/digits"),
        (["tariffs", "create", "1", "T"], None),
        (["tariffs", "create", "1", "T"], "already exists"),
        (["tariffs", "set-price", "1", "rcs", "sms", "UA", "1"], "channel/kind"),
        (["tariffs", "set-price", "1", "sms", "sms", "UA", "--", "-1"], "cannot be negative"),
    ]
    for args, message in cases:
        result = cli(*args, ok=message is None)
        if message is not None:
            assert result.exit_code == 1, args
            assert message in result.stderr, (args, result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["accounts", "create", "X", "--currency", "XYZ"], "ISO 4217"),
        (["accounts", "create", "X", "--currency", "XAU"], "ISO 4217"),  # gold is no account currency
        (["accounts", "create", "X", "--credit", "1e3"], "not an amount"),
        (["agents", "create", "{account}", "a", "--country", "ZZ"], "ISO 3166-1"),
        (["senders", "create", "{account}", "AcmeSMS", "--country", "ZZ"], "ISO 3166-1"),
        (["tariffs", "set-price", "1", "rcs", "text", "ZZ", "0.05"], "ISO 3166-1"),
        (["tariffs", "set-price", "1", "rcs", "text", "UA", "5E-2"], "not an amount"),
        (["accounts", "topup", "{account}", "1e3"], "not an amount"),
        (["accounts", "topup", "{account}", "NaN"], "not an amount"),
        (["accounts", "topup", "{account}", "Infinity"], "not an amount"),
        (["accounts", "topup", "{account}", "1_000"], "not an amount"),
        (["accounts", "topup", "{account}", "0x10"], "not an amount"),
        (["accounts", "topup", "{account}", "100000000000"], "too large"),
        # more significant digits than Decimal's context keeps (28): refused, not rounded to 1.0000000
        (["accounts", "topup", "{account}", "1." + "0" * 30 + "1"], "more than 7 decimal places"),
        (["accounts", "set-credit", "{account}", "1E2"], "not an amount"),
    ],
)
def test_iso_codes_and_plain_amounts(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    """Currencies and countries are real ISO codes; amounts are plain decimals, never exponents."""
    account = str(as_json(cli("accounts", "create", "Acme", "--no-key", "--json"))["id"])
    cli("tariffs", "create", "1", "T")
    result = cli(*[a.format(account=account) for a in args], ok=False)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    shown = as_json(cli("accounts", "show", account, "--json"))
    assert shown["balance"] == "0.0000000" and shown["credit_limit"] == "0.0000000"
    assert len(as_json(cli("accounts", "list", "--json"))) == 1
    assert as_json(cli("agents", "list", "--json")) == as_json(cli("senders", "list", "--json")) == []
    assert as_json(cli("tariffs", "show", "1", "--json"))["prices"] == []


def test_iso_codes_and_plain_amounts_that_work(cli) -> None:  # type: ignore[no-untyped-def]
    account = as_json(cli("accounts", "create", "Acme", "--currency", "uah", "--no-key", "--json"))
    assert account["currency"] == "UAH"
    account_id = str(account["id"])
    assert as_json(cli("accounts", "topup", account_id, "+.5", "--json"))["balance"] == "0.5000000"
    assert as_json(cli("accounts", "topup", account_id, "1000.", "--json"))["balance"] == "1000.5000000"
    # Trailing zeros past the 7th place add no precision: accepted, exactly.
    assert as_json(cli("accounts", "topup", account_id, "0.50000000", "--json"))["balance"] == "1001.0000000"
    assert as_json(cli("agents", "create", account_id, "a", "--country", "xk", "--json"))["country"] == "XK"


def _whole(text: str) -> str:
    return "".join(text.split())


def test_help_is_never_cut() -> None:
    """At 80 columns (what a pipe gets) every help text is shown whole: wrapped, never cut with an
    ellipsis; group listings show each command's whole first paragraph."""
    import typer.main

    root = typer.main.get_command(app)

    def walk(command, path: list[str]):  # type: ignore[no-untyped-def]
        yield path, command
        if hasattr(command, "list_commands"):
            ctx = command.context_class(command)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), [*path, name])

    checked = 0
    for path, command in walk(root, []):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": None})
        assert result.exit_code == 0, path
        out = result.stdout
        # (Rich's cuts end in "…", click's in "...": the first show up below as texts not found whole.)
        cut = [line for line in out.splitlines() if line.endswith("...") and not line.startswith("Usage")]
        assert not cut, (path, out)
        assert max(len(line) for line in out.splitlines()) <= 80, (path, out)
        texts = [p.help for p in command.params if getattr(p, "help", None)]
        texts.append(" ".join((command.help or "").split("\n\n")[0].split()))
        if hasattr(command, "list_commands"):
            ctx = command.context_class(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                texts.append(" ".join((sub.help or "").split("\n\n")[0].split()))
        for text in texts:
            assert _whole(text) in _whole(out), (path, text, out)
            checked += 1
    assert checked > 100
    long_one = runner.invoke(app, ["simulator", "--help"], env={"COLUMNS": "80"}).stdout
    # (rich's panels cut it to "http://HOST:PORT/api/u…" and "RCSGATE_UPSTREAM_SECRE…")
    assert "http://HOST:PORT/api/upstream/simulator/events" in _whole(long_one)
    assert "RCSGATE_UPSTREAM_SECRET]" in long_one


def test_database_files_are_private(tmp_path: Path) -> None:
    """The SQLite database holds webhook secrets and connector keys: it and its -wal and -shm are
    created 0600, whoever creates them first (`db upgrade`, or any process opening the database)."""
    import asyncio

    from sqlalchemy import text

    from rcsgate.store.db import Database

    old = os.umask(0o022)  # the usual umask, under which files are created 0644 unless asked otherwise
    try:
        env = {"RCSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'rcsgate.db'}"}
        assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
        other = tmp_path / "other.db"

        async def modes(path: Path) -> dict[str, int]:
            """The modes of the database's files while it is open (-wal and -shm go when it closes)."""
            db = Database.from_url(f"sqlite:///{path}")
            try:
                async with db.write() as conn:
                    await conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
                    await conn.execute(text("INSERT INTO t VALUES (1)"))
                files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
                return {p.name: p.stat().st_mode & 0o777 for p in files}
            finally:
                await db.close()

        for path in (tmp_path / "var" / "rcsgate.db", other):
            found = asyncio.run(modes(path))
            assert {path.name, f"{path.name}-wal", f"{path.name}-shm"} <= set(found), found
            assert set(found.values()) == {0o600}, found
    finally:
        os.umask(old)


def test_every_command_has_help() -> None:
    groups = {
        "": [
            "serve",
            "api",
            "worker",
            "demo",
            "db",
            "accounts",
            "keys",
            "users",
            "agents",
            "senders",
            "tariffs",
        ],
        "db": ["upgrade"],
        "accounts": ["create", "list", "show", "topup", "set-credit", "set-callback-url", "webhook-secret"],
        "keys": ["create", "list", "revoke"],
        "users": ["create", "list", "disable", "enable", "set-password"],
        "agents": ["create", "list", "set-status"],
        "senders": ["create", "list"],
        "tariffs": ["create", "list", "show", "set-price", "assign"],
    }
    for group, commands in groups.items():
        for command in commands:
            args = [a for a in (group, command) if a] + ["--help"]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, args
            assert "Usage" in result.stdout


def test_scaled_mode_refuses_to_start_without_a_jwt_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env["RCSGATE_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none"
    for command in (["serve"], ["api"], ["worker"]):
        proc = subprocess.run(
            [sys.executable, "-m", "rcsgate.cli", *command],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1, proc
        assert proc.stderr.strip().splitlines() == [
            "error: RCSGATE_JWT_SECRET is required with a PostgreSQL database: every API process must sign "
            "and verify tokens with the same secret"
        ]


def test_unmigrated_database_is_reported(tmp_path: Path) -> None:
    env = {"RCSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "RCSGATE_VAR_DIR": str(tmp_path)}
    result = runner.invoke(app, ["accounts", "list"], env=env)
    assert result.exit_code == 1
    assert "run `rcsgate db upgrade`" in result.stderr
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    assert runner.invoke(app, ["accounts", "list"], env=env).exit_code == 0


def test_a_missing_postgresql_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    base = os.environ.get("RCSGATE_TEST_DATABASE_URL")
    if not base:
        pytest.skip("needs RCSGATE_TEST_DATABASE_URL (a reachable PostgreSQL server)")
    missing = base.rsplit("/", 1)[0] + "/rcsgate_no_such_database"
    env = {**os.environ, "RCSGATE_DATABASE_URL": missing, "RCSGATE_VAR_DIR": str(tmp_path)}
    for args in (["db", "upgrade"], ["accounts", "list"]):
        done = subprocess.run(
            [sys.executable, "-m", "rcsgate.cli", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1, (args, done.stderr)
        assert (
            done.stderr.strip() == 'error: database error: database "rcsgate_no_such_database" does not exist'
        )
