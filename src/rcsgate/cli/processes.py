"""The long-running processes (serve, api, worker, simulator) and the database schema (db upgrade)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

from rcsgate.cli import startup
from rcsgate.cli.common import database_error, fail, load_settings, os_error, run
from rcsgate.clock import SystemClock
from rcsgate.config import Settings
from rcsgate.gc_tuning import tune_for_service
from rcsgate.store.db import Database
from rcsgate.store.signals import Signals

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def _preflight(settings: Settings, *, lock: bool = False, listen: tuple[str, int] | None = None) -> None:
    """Everything a process needs, checked before it starts anything (cli/startup.py): the JWT
    secret, on SQLite the database's files (and with ``lock`` its lock: processes that run the
    background workers), the address to ``listen`` on, and the schema."""
    startup.prepare_jwt_secret(settings)
    startup.check_database_files(settings, lock=lock)
    if listen is not None:
        startup.check_port(*listen)
    run(lambda db: asyncio.sleep(0))


def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default RCSGATE_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RCSGATE_PORT or 8080).")] = None,
) -> None:
    """Run the API, the background workers and the simulator in one process (embedded mode)."""
    import uvicorn

    from rcsgate.api.app import create_app

    settings = load_settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    _preflight(settings, lock=True, listen=(bind_host, bind_port))
    application = create_app(settings, run_workers=True)
    tune_for_service()
    typer.echo(f"rcsgate serving on http://{bind_host}:{bind_port}", err=True)
    from rcsgate.api.http_server import server_options

    uvicorn.run(
        application, host=bind_host, port=bind_port, log_config=None, access_log=False, **server_options()
    )


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default RCSGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RCSGATE_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes.")] = 1,
) -> None:
    """Run only the HTTP API (scaled mode: pair with `rcsgate worker` processes)."""
    import uvicorn

    from rcsgate.api.app import create_app

    settings = load_settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    _preflight(settings, listen=(bind_host, bind_port))
    from rcsgate.api.http_server import server_options

    bind = {"host": bind_host, "port": bind_port, "log_config": None, "access_log": False, **server_options()}
    if workers == 1:
        application = create_app(settings)
        tune_for_service()
        uvicorn.run(application, **bind)
    else:
        from rcsgate.metrics.multiprocess import shared_directory

        # The N processes answer /metrics for all of them from the files they share there.
        with shared_directory(settings.metrics_dir):
            uvicorn.run("rcsgate.api.app:app_from_env", factory=True, workers=workers, **bind)


def worker() -> None:
    """Run only the background workers (dispatcher, simulator, webhook sender); stops cleanly on SIGTERM."""
    from rcsgate.dispatch.runner import run_until_stopped
    from rcsgate.dispatch.runtime import Runtime
    from rcsgate.logging_setup import configure_logging

    settings = load_settings()
    metrics_at = (settings.metrics_host, settings.metrics_port) if settings.metrics_port else None
    _preflight(settings, lock=True, listen=metrics_at)
    configure_logging(settings.log_level)

    async def main() -> None:
        from rcsgate.metrics.exposition import Exporter, serve_worker_metrics

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        db = Database.from_url(settings.database_url)
        metrics_server = None
        try:
            clock = SystemClock()
            runtime = Runtime.build(settings=settings, db=db, clock=clock, signals=Signals(db))
            if metrics_at is not None:
                token = settings.metrics_token
                exporter = Exporter(
                    db=db,
                    clock=clock,
                    token=token.get_secret_value() if token else None,
                    # The database gauges come from the worker leading the sweeper (docs/deploy.md).
                    leading=lambda: runtime.dispatcher.leading,
                )
                metrics_server = await serve_worker_metrics(exporter, *metrics_at)
            tune_for_service()
            await run_until_stopped(stop, runtime.loops())
        finally:
            if metrics_server is not None:
                await metrics_server.cleanup()
            await db.close()

    asyncio.run(main())


def simulator(
    report_url: Annotated[
        str | None,
        typer.Option(
            help="Where to POST signed report batches: rcsgate's "
            "http://HOST:PORT/api/upstream/simulator/events (not needed with --rbm alone)."
        ),
    ] = None,
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
    rbm: Annotated[
        bool, typer.Option("--rbm", help="Also serve a local Google RBM (docs/connectors/rbm.md).")
    ] = False,
    rbm_webhook_url: Annotated[
        str | None,
        typer.Option(
            help="Where the local RBM pushes Google's events: http://HOST:PORT/api/upstream/rbm/NAME."
        ),
    ] = None,
    rbm_client_token: Annotated[
        str | None,
        typer.Option(
            envvar="RCSGATE_RBM_CLIENT_TOKEN",
            show_envvar=True,
            help="The client token the local RBM signs events with (the connector's --webhook-token).",
        ),
    ] = None,
    rbm_key_out: Annotated[
        Path | None,
        typer.Option(help="Write a service-account key for the local RBM here (for connectors add-rbm)."),
    ] = None,
    rbm_key: Annotated[
        list[Path] | None, typer.Option(help="A service-account key file the local RBM accepts (repeatable).")
    ] = None,
    rbm_push_concurrency: Annotated[
        int, typer.Option(min=1, max=1000, help="Events the local RBM pushes at once (in flight).")
    ] = 8,
    smpp_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Also serve a local SMSC on this SMPP port (docs/connectors/smpp.md)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR.")] = "INFO",
) -> None:
    """Run the simulated upstream as a service of its own, with fault injection (docs/simulator.md).

    Point rcsgate at it with RCSGATE_UPSTREAM_URL=http://HOST:PORT and the same RCSGATE_UPSTREAM_SECRET."""
    from pydantic import ValidationError

    from rcsgate.connectors import simulator_service as service

    if report_url is None and not rbm and smpp_port is None:
        raise fail("--report-url is needed (or --rbm / --smpp-port for the local RBM or SMSC alone)")
    if report_url is not None and not secret:
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
        rbm=rbm,
        rbm_webhook_url=rbm_webhook_url,
        rbm_client_token=rbm_client_token,
        rbm_key_files=tuple(rbm_key or ()),
        rbm_key_out=rbm_key_out,
        rbm_push_concurrency=rbm_push_concurrency,
        smpp_port=smpp_port,
    )
    try:
        options.check()
    except ValueError as exc:
        raise fail(str(exc)) from exc
    startup.check_port(host, port)
    where = f"reports to {report_url}" if report_url else "no simulator reports"
    rbm_line = f"; local RBM: http://{host}:{port}/v1" if rbm else ""
    if smpp_port is not None:
        startup.check_port(host, smpp_port)
        rbm_line += f"; local SMSC: smpp://{host}:{smpp_port}"
    typer.echo(f"rcsgate simulator on http://{host}:{port}, {where}{rbm_line}", err=True)
    service.run(options, log_level=log_level.upper())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest revision (safe to run again)."""
    from rcsgate.store.migrate import head_revision, upgrade

    settings = load_settings()
    startup.check_database_files(settings, lock=False)
    try:
        upgrade(settings.database_url)
    except OSError as exc:
        raise fail(os_error(exc)) from exc
    except DBAPIError as exc:
        raise fail(database_error(exc, settings.database_url)) from exc
    typer.echo(f"database at revision {head_revision()}", err=True)
