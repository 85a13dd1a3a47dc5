"""``rcsgate``: the operator's command line. Every command reads RCSGATE_* settings (RCSGATE_DATABASE_URL)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import DBAPIError

from rcsgate.clock import SystemClock
from rcsgate.config import ConfigError, Settings
from rcsgate.domain.api_keys import parse_mode
from rcsgate.domain.errors import DomainError, InvalidInput
from rcsgate.domain.money import format_units
from rcsgate.domain.records import Account
from rcsgate.gc_tuning import tune_for_service
from rcsgate.store.db import Database
from rcsgate.store.migrate import NotMigrated, ensure_at_head
from rcsgate.store.signals import Signals

T = TypeVar("T")

app = typer.Typer(
    help="rcsgate: self-hosted RCS business messaging (BSG One-API compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
accounts_app = typer.Typer(help="Customer accounts: create, fund, configure.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of an account (shown once, stored hashed).", no_args_is_help=True)
agents_app = typer.Typer(help="RCS agents (senders of RCS messages).", no_args_is_help=True)
senders_app = typer.Typer(help="SMS senders (used by the SMS alternative channel).", no_args_is_help=True)
tariffs_app = typer.Typer(help="Tariffs and their prices per country and message kind.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(agents_app, name="agents")
app.add_typer(senders_app, name="senders")
contacts_app = typer.Typer(
    help="The contact book (test mode sends only to verified contacts).", no_args_is_help=True
)
stoplist_app = typer.Typer(help="Stop lists: numbers not to message on a channel.", no_args_is_help=True)
app.add_typer(tariffs_app, name="tariffs")
app.add_typer(contacts_app, name="contacts")
app.add_typer(stoplist_app, name="stoplist")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _settings() -> Settings:
    try:
        return Settings()
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    except ValueError as exc:
        first = str(exc).splitlines()
        raise fail(" ".join(first[:3])) from exc


def run(action: Callable[[Database], Awaitable[T]], *, check_schema: bool = True) -> T:
    """Run one async action against the configured database, turning known errors into one line."""
    settings = _settings()

    async def main() -> T:
        db = Database.from_url(settings.database_url)
        try:
            if check_schema:
                await ensure_at_head(db)
            return await action(db)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except InvalidInput as exc:
        details = "; ".join(f"{field}: {' '.join(reasons)}" for field, reasons in exc.errors.items())
        raise fail(details or exc.message) from exc
    except (DomainError, ConfigError, NotMigrated) as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        raise fail(f"cannot reach the database: {exc}") from exc
    except DBAPIError as exc:
        raise fail(_database_error(exc)) from exc


def _database_error(exc: DBAPIError) -> str:
    """The driver's own words (a missing database, say), without SQLAlchemy's statement and traceback."""
    return f"database error: {str(exc.orig).strip() or type(exc.orig).__name__}"


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.7f}"
    return value


def emit(data: Any, as_json: bool, text: str | Callable[[], str]) -> None:
    if as_json:
        typer.echo(json.dumps(_plain(data), indent=2, sort_keys=True))
    else:
        typer.echo(text() if callable(text) else text)


def account_view(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "currency": account.currency,
        "balance": format_units(account.balance_units),
        "credit_limit": format_units(account.credit_limit_units),
        "reserved": format_units(account.reserved_units),
        "mode": account.mode,
        "rcs_callback_url": account.rcs_callback_url,
        "timezone": account.timezone,
        "created_at": account.created_at.isoformat(),
    }


def account_line(account: Account) -> str:
    v = account_view(account)
    return (
        f"#{v['id']} {v['name']} [{v['mode']}] balance {v['balance']} {v['currency']}, "
        f"credit {v['credit_limit']}, reserved {v['reserved']}, callback {v['rcs_callback_url'] or '-'}"
    )


# ---------------------------------------------------------------- processes


def _preflight(settings: Settings) -> None:
    try:
        settings.resolved_jwt_secret()
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    run(lambda db: asyncio.sleep(0))


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default RCSGATE_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RCSGATE_PORT or 8080).")] = None,
) -> None:
    """Run the API, the background workers and the simulator in one process (embedded mode)."""
    import uvicorn

    from rcsgate.api.app import create_app

    settings = _settings()
    _preflight(settings)
    application = create_app(settings, run_workers=True)
    tune_for_service()
    typer.echo(f"rcsgate serving on http://{host or settings.host}:{port or settings.port}", err=True)
    uvicorn.run(
        application, host=host or settings.host, port=port or settings.port, log_config=None, access_log=False
    )


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default RCSGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RCSGATE_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes.")] = 1,
) -> None:
    """Run only the HTTP API (scaled mode: pair with `rcsgate worker` processes)."""
    import uvicorn

    from rcsgate.api.app import create_app

    settings = _settings()
    _preflight(settings)
    bind = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_config": None,
        "access_log": False,
    }
    if workers == 1:
        application = create_app(settings)
        tune_for_service()
        uvicorn.run(application, **bind)  # type: ignore[arg-type]
    else:
        uvicorn.run("rcsgate.api.app:app_from_env", factory=True, workers=workers, **bind)  # type: ignore[arg-type]


@app.command()
def worker() -> None:
    """Run only the background workers (dispatcher, simulator, webhook sender); stops cleanly on SIGTERM."""
    from rcsgate.dispatch.runner import run_until_stopped
    from rcsgate.dispatch.runtime import Runtime
    from rcsgate.logging_setup import configure_logging

    settings = _settings()
    _preflight(settings)
    configure_logging(settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        db = Database.from_url(settings.database_url)
        try:
            runtime = Runtime.build(settings=settings, db=db, clock=SystemClock(), signals=Signals(db))
            tune_for_service()
            await run_until_stopped(stop, runtime.loops())
        finally:
            await db.close()

    asyncio.run(main())


@app.command()
def simulator(
    report_url: Annotated[
        str,
        typer.Option(
            help="Where to POST signed report batches: rcsgate's "
            "http://HOST:PORT/api/upstream/simulator/events."
        ),
    ],
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 9090,
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="RCSGATE_UPSTREAM_SECRET",
            show_envvar=True,
            help="Shared secret that signs the reports (at least 16 characters).",
        ),
    ] = None,
    profile: Annotated[str, typer.Option(help="deterministic or realistic.")] = "deterministic",
    seed: Annotated[int, typer.Option(help="Seed of the realistic profile.")] = 0,
    zero_latency: Annotated[
        bool, typer.Option("--zero-latency", help="Reports as fast as possible.")
    ] = False,
    sent_latency: Annotated[float, typer.Option(min=0, help="Seconds before the handset is reached.")] = 0.05,
    delivered_latency: Annotated[float, typer.Option(min=0, help="Then seconds to delivered.")] = 0.2,
    read_latency: Annotated[float, typer.Option(min=0, help="Then seconds to read.")] = 1.0,
    click_latency: Annotated[float, typer.Option(min=0, help="Then seconds to the click (9994).")] = 0.5,
    error_rate: Annotated[float, typer.Option(min=0, max=1, help="Fault: answer 503, unprocessed.")] = 0.0,
    reset_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fault: reset the connection, unprocessed.")
    ] = 0.0,
    timeout_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fault: process the submit, then never answer.")
    ] = 0.0,
    blackhole_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fault: never answer, unprocessed.")
    ] = 0.0,
    slow_rate: Annotated[float, typer.Option(min=0, max=1, help="Fault: answer after --slow-seconds.")] = 0.0,
    slow_seconds: Annotated[float, typer.Option(min=0, help="Delay of a slow answer.")] = 2.0,
    hang_seconds: Annotated[
        float, typer.Option(min=0.001, help="How long a timeout or black hole holds the connection.")
    ] = 30.0,
    fault_seed: Annotated[int, typer.Option(help="Seed of the fault draws.")] = 0,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR.")] = "INFO",
) -> None:
    """Run the simulated upstream as a service of its own, with fault injection (docs/simulator.md).

    Point rcsgate at it with RCSGATE_UPSTREAM_URL=http://HOST:PORT and the same RCSGATE_UPSTREAM_SECRET."""
    from pydantic import ValidationError

    from rcsgate.connectors import simulator_service as service

    if not secret:
        raise fail("a shared secret is needed: --secret or RCSGATE_UPSTREAM_SECRET")
    if profile not in ("deterministic", "realistic"):
        raise fail("--profile must be deterministic or realistic")
    try:
        faults = service.FaultConfig(
            error_rate=error_rate,
            reset_rate=reset_rate,
            timeout_rate=timeout_rate,
            blackhole_rate=blackhole_rate,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
            hang_seconds=hang_seconds,
            seed=fault_seed,
        )
    except ValidationError as exc:
        raise fail(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from exc
    options = service.ServiceOptions(
        report_url=report_url,
        secret=secret,
        host=host,
        port=port,
        sent_latency=sent_latency,
        delivered_latency=delivered_latency,
        read_latency=read_latency,
        click_latency=click_latency,
        profile="realistic" if profile == "realistic" else "deterministic",
        seed=seed,
        zero_latency=zero_latency,
        faults=faults,
    )
    try:
        options.check()
    except ValueError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"rcsgate simulator on http://{host}:{port}, reports to {report_url}", err=True)
    service.run(options, log_level=log_level.upper())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest revision (safe to run again)."""
    from rcsgate.store.migrate import head_revision, upgrade

    settings = _settings()
    try:
        upgrade(settings.database_url)
    except OSError as exc:
        raise fail(f"cannot reach the database: {exc}") from exc
    except DBAPIError as exc:
        raise fail(_database_error(exc)) from exc
    typer.echo(f"database at revision {head_revision()}", err=True)


# ---------------------------------------------------------------- demo


@app.command()
def demo(as_json: JsonFlag = False) -> None:
    """Create (once) a demo account with 100 EUR, agent demo_agent (UA), SMS sender DemoSMS and prices."""
    from rcsgate.services.demo import ensure_demo

    settings = _settings()
    setup = run(lambda db: ensure_demo(db, SystemClock(), var_dir=settings.var_dir))
    if as_json:
        emit(setup, True, "")
        return
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"Demo account #{setup.account_id}: agent {setup.agent}, SMS sender {setup.sms_sender}")
    typer.echo(f"API key: {setup.api_key}")
    typer.echo("Try:")
    typer.echo(
        f"  TOKEN=$(curl -s -X POST {base}/api/auth/login -H 'Content-Type: application/json' "
        f'-d \'{{"api_key": "{setup.api_key}"}}\' | python3 -c \'import json,sys; print(json.load(sys.stdin)["bearer"])\')'
    )
    typer.echo(f'  curl -s {base}/api/accounts/balance -H "Authorization: Bearer $TOKEN"')


# ---------------------------------------------------------------- accounts


@accounts_app.command("create")
def accounts_create(
    name: str,
    currency: Annotated[str, typer.Option(help="ISO 4217 currency.")] = "EUR",
    mode: Annotated[str, typer.Option(help="live or test.")] = "live",
    credit: Annotated[str, typer.Option(help="Credit limit.")] = "0",
    timezone: Annotated[str, typer.Option(help="IANA time zone for timestamps in answers.")] = "UTC",
    key: Annotated[bool, typer.Option("--key/--no-key", help="Also create an API key (shown once).")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Create an account (and, by default, its first API key)."""
    from rcsgate.domain.timefmt import zone
    from rcsgate.services import accounts, auth

    try:
        zone(timezone)
        account_mode = parse_mode(mode)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    clock = SystemClock()

    async def action(db: Database) -> tuple[Account, str | None]:
        account = await accounts.create_account(
            db,
            clock,
            name=name,
            currency=currency,
            mode=account_mode,
            credit_limit=credit,
            timezone=timezone,
        )
        new_key = await auth.create_key(db, clock, account_id=account.id) if key else None
        return account, new_key.key if new_key else None

    account, api_key = run(action)
    view = account_view(account) | ({"api_key": api_key} if api_key else {})
    emit(view, as_json, lambda: account_line(account) + (f"\nAPI key: {api_key}" if api_key else ""))


@accounts_app.command("list")
def accounts_list(as_json: JsonFlag = False) -> None:
    """List all accounts."""
    from rcsgate.services import accounts

    items = run(accounts.list_accounts)
    emit(
        [account_view(a) for a in items],
        as_json,
        lambda: "\n".join(account_line(a) for a in items) or "no accounts",
    )


@accounts_app.command("show")
def accounts_show(account_id: int, as_json: JsonFlag = False) -> None:
    """Show one account."""
    from rcsgate.services import accounts

    account = run(lambda db: accounts.get_account(db, account_id))
    emit(account_view(account), as_json, lambda: account_line(account))


@accounts_app.command("topup")
def accounts_topup(
    account_id: int,
    amount: Annotated[
        str,
        typer.Argument(
            help="Amount in the account currency, up to 7 decimals (write -- before a negative one)."
        ),
    ],
    note: Annotated[str | None, typer.Option(help="Ledger note.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add funds to an account (a negative amount records an adjustment)."""
    from rcsgate.services import accounts

    account = run(
        lambda db: accounts.topup(db, SystemClock(), account_id=account_id, amount=amount, note=note)
    )
    emit(account_view(account), as_json, lambda: account_line(account))


@accounts_app.command("set-credit")
def accounts_set_credit(account_id: int, credit_limit: str, as_json: JsonFlag = False) -> None:
    """Set how far below zero the balance may go."""
    from rcsgate.services import accounts

    account = run(lambda db: accounts.set_credit_limit(db, account_id=account_id, credit_limit=credit_limit))
    emit(account_view(account), as_json, lambda: account_line(account))


@accounts_app.command("set-callback-url")
def accounts_set_callback_url(
    account_id: int,
    url: Annotated[str, typer.Argument(help="http(s) URL, at most 100 characters; '' to clear.")],
    as_json: JsonFlag = False,
) -> None:
    """Set the account's RCS callback URL (status and click webhooks)."""
    from rcsgate.services import accounts

    account = run(lambda db: accounts.set_callback_url(db, account_id=account_id, url=url or None))
    emit(account_view(account), as_json, lambda: account_line(account))


@accounts_app.command("webhook-secret")
def accounts_webhook_secret(
    account_id: int,
    rotate: Annotated[bool, typer.Option("--rotate", help="Replace it with a new secret.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show (or rotate) the secret that signs this account's webhooks (Standard Webhooks)."""
    from rcsgate.services import accounts

    if rotate:
        secret = run(lambda db: accounts.rotate_webhook_secret(db, account_id=account_id))
    else:
        secret = run(lambda db: accounts.webhook_secret(db, account_id=account_id))
    emit({"account_id": account_id, "webhook_secret": secret}, as_json, secret)


# ---------------------------------------------------------------- keys


@keys_app.command("create")
def keys_create(
    account_id: int,
    mode: Annotated[str | None, typer.Option(help="live or test (default: the account's mode).")] = None,
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key. Its text is shown only now."""
    from rcsgate.services import auth

    try:
        chosen = parse_mode(mode) if mode is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from exc
    new = run(lambda db: auth.create_key(db, SystemClock(), account_id=account_id, mode=chosen, label=label))
    emit(
        {"id": new.info.id, "account_id": account_id, "mode": new.info.mode, "api_key": new.key},
        as_json,
        f"key #{new.info.id} ({new.info.mode})\nAPI key: {new.key}",
    )


@keys_app.command("list")
def keys_list(account_id: int, as_json: JsonFlag = False) -> None:
    """List an account's keys (prefixes only)."""
    from rcsgate.services import auth

    items = run(lambda db: auth.list_keys(db, account_id=account_id))
    emit(
        items,
        as_json,
        lambda: (
            "\n".join(
                f"#{k.id} {k.prefix}… {k.mode} {k.label or ''} "
                f"{'revoked ' + k.revoked_at.isoformat() if k.revoked_at else 'active'}"
                for k in items
            )
            or "no keys"
        ),
    )


@keys_app.command("revoke")
def keys_revoke(key_id: int, as_json: JsonFlag = False) -> None:
    """Revoke a key; tokens issued from it stop working at once."""
    from rcsgate.services import auth

    info = run(lambda db: auth.revoke_key(db, SystemClock(), key_id=key_id))
    emit(info, as_json, f"key #{info.id} revoked")


# ---------------------------------------------------------------- agents and senders


@agents_app.command("create")
def agents_create(
    account_id: int,
    name: str,
    country: Annotated[str, typer.Option(help="ISO country the agent may send to, e.g. UA.")],
    status: Annotated[str, typer.Option(help="active, blocked or registering.")] = "active",
    test: Annotated[bool, typer.Option("--test", help="The account's test agent (test mode).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Register an RCS agent for an account."""
    from rcsgate.services import senders

    agent = run(
        lambda db: senders.create_agent(
            db, SystemClock(), account_id=account_id, name=name, country=country, status=status, is_test=test
        )
    )
    emit(agent, as_json, f"agent #{agent.id} {agent.name} ({agent.country}, {agent.status})")


@agents_app.command("list")
def agents_list(
    account: Annotated[int | None, typer.Option(help="Only this account's agents.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List RCS agents."""
    from rcsgate.services import senders

    items = run(lambda db: senders.list_agents(db, account_id=account))
    emit(
        items,
        as_json,
        lambda: (
            "\n".join(
                f"#{a.id} account {a.account_id} {a.name} {a.country} {a.status}{' test' if a.is_test else ''}"
                for a in items
            )
            or "no agents"
        ),
    )


@agents_app.command("set-status")
def agents_set_status(agent_id: int, status: str, as_json: JsonFlag = False) -> None:
    """Set an agent's status: active, blocked or registering."""
    from rcsgate.services import senders

    agent = run(lambda db: senders.set_agent_status(db, agent_id=agent_id, status=status))
    emit(agent, as_json, f"agent #{agent.id} {agent.name} is {agent.status}")


@agents_app.command("set-rate")
def agents_set_rate(
    agent_id: int,
    rate: Annotated[
        str, typer.Argument(help="Messages per second across all workers, or 'none' for unlimited.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Limit how fast an agent sends (shared by every worker process)."""
    from rcsgate.services import senders

    try:
        value = None if rate.lower() in ("none", "unlimited") else int(rate)
    except ValueError as exc:
        raise fail("rate must be a whole number of messages per second, or 'none'") from exc
    agent = run(lambda db: senders.set_send_rate(db, agent_id=agent_id, rate=value))
    emit(agent, as_json, f"agent #{agent.id} {agent.name}: {agent.send_rate or 'unlimited'} messages/s")


@senders_app.command("create")
def senders_create(
    account_id: int,
    name: str,
    country: Annotated[str | None, typer.Option(help="ISO country, if the sender is bound to one.")] = None,
    default: Annotated[bool, typer.Option("--default", help="The account's default SMS sender.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Register an SMS sender for an account."""
    from rcsgate.services import senders

    sender = run(
        lambda db: senders.create_sender(
            db, SystemClock(), account_id=account_id, name=name, country=country, is_default=default
        )
    )
    emit(sender, as_json, f"sender #{sender.id} {sender.name}")


@senders_app.command("list")
def senders_list(
    account: Annotated[int | None, typer.Option(help="Only this account's senders.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List SMS senders."""
    from rcsgate.services import senders

    items = run(lambda db: senders.list_senders(db, account_id=account))
    emit(
        items,
        as_json,
        lambda: (
            "\n".join(f"#{s.id} account {s.account_id} {s.name} {s.status}" for s in items) or "no senders"
        ),
    )


# ---------------------------------------------------------------- tariffs


@tariffs_app.command("create")
def tariffs_create(
    code: int,
    name: str,
    default: Annotated[bool, typer.Option("--default", help="Make it the system default tariff.")] = False,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it inactive.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a tariff."""
    from rcsgate.services import tariffs

    tariff = run(
        lambda db: tariffs.create_tariff(
            db, SystemClock(), code=code, name=name, is_default=default, is_active=not inactive
        )
    )
    emit(tariff, as_json, f"tariff {tariff.code} {tariff.name}{' (default)' if tariff.is_default else ''}")


@tariffs_app.command("list")
def tariffs_list(as_json: JsonFlag = False) -> None:
    """List tariffs."""
    from rcsgate.services import tariffs

    items = run(tariffs.list_tariffs)
    emit(
        items,
        as_json,
        lambda: (
            "\n".join(
                f"{t.code} {t.name}{' default' if t.is_default else ''}{'' if t.is_active else ' inactive'}"
                for t in items
            )
            or "no tariffs"
        ),
    )


@tariffs_app.command("show")
def tariffs_show(code: int, as_json: JsonFlag = False) -> None:
    """Show a tariff and its prices."""
    from rcsgate.services import tariffs

    tariff, prices = run(lambda db: tariffs.get_tariff(db, code=code))
    data = {
        "tariff": tariff,
        "prices": [
            {"channel": p.channel, "kind": p.kind, "country": p.country, "price": format_units(p.price_units)}
            for p in prices
        ],
    }
    emit(
        data,
        as_json,
        lambda: "\n".join(
            [f"tariff {tariff.code} {tariff.name}"]
            + [f"  {p.country} {p.channel}/{p.kind} {format_units(p.price_units)}" for p in prices]
        ),
    )


@tariffs_app.command("set-price")
def tariffs_set_price(
    code: int,
    channel: Annotated[str, typer.Argument(help="rcs or sms.")],
    kind: Annotated[str, typer.Argument(help="text, single_card, carousel (rcs) or sms (sms).")],
    country: Annotated[str, typer.Argument(help="ISO country, e.g. UA.")],
    price: Annotated[str, typer.Argument(help="Price per message (SMS: per part), up to 7 decimals.")],
    as_json: JsonFlag = False,
) -> None:
    """Set one price of a tariff."""
    from rcsgate.services import tariffs

    result = run(
        lambda db: tariffs.set_price(db, code=code, channel=channel, kind=kind, country=country, price=price)
    )
    emit(
        {**asdict(result), "price": format_units(result.price_units)},
        as_json,
        f"tariff {code}: {result.country} {result.channel}/{result.kind} = {format_units(result.price_units)}",
    )


@tariffs_app.command("assign")
def tariffs_assign(
    account_id: int,
    code: int,
    default: Annotated[
        bool, typer.Option("--default", help="Bill the account by it when it names none.")
    ] = False,
) -> None:
    """Connect a tariff to an account."""
    from rcsgate.services import tariffs

    run(lambda db: tariffs.assign_tariff(db, account_id=account_id, code=code, is_default=default))
    typer.echo(f"tariff {code} assigned to account {account_id}{' as default' if default else ''}")


# ---------------------------------------------------------------- contacts and stop lists


@contacts_app.command("verify")
def contacts_verify(
    account_id: int,
    phone: Annotated[str, typer.Argument(help="Digits, country code first (a leading + is ignored).")],
) -> None:
    """Mark a phone as a verified contact of the account (adding it if new)."""
    from rcsgate.services import contacts

    run(lambda db: contacts.verify(db, SystemClock(), account_id=account_id, phone=phone))
    typer.echo(f"{phone.lstrip('+')} is a verified contact of account {account_id}")


@stoplist_app.command("add")
def stoplist_add(
    account_id: int,
    phones: Annotated[list[str], typer.Argument(help="Phones, digits only.")],
    list_type: Annotated[str, typer.Option("--type", help="sms, rcs, viber or whatsapp.")] = "rcs",
) -> None:
    """Put phones on one of the account's stop lists."""
    from rcsgate.services import stoplist

    run(
        lambda db: stoplist.attach(
            db, SystemClock(), account_id=account_id, phones=phones, list_type=list_type
        )
    )
    typer.echo(f"{len(phones)} phone(s) on the {list_type} stop list of account {account_id}")


@stoplist_app.command("remove")
def stoplist_remove(
    account_id: int,
    phones: Annotated[list[str], typer.Argument(help="Phones, digits only.")],
    list_type: Annotated[str, typer.Option("--type", help="sms, rcs, viber or whatsapp.")] = "rcs",
) -> None:
    """Take phones off a stop list."""
    from rcsgate.services import stoplist

    run(lambda db: stoplist.detach(db, account_id=account_id, phones=phones, list_type=list_type))
    typer.echo(f"{len(phones)} phone(s) off the {list_type} stop list of account {account_id}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
