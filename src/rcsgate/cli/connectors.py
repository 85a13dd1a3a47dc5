"""Connectors to real upstreams (``rcsgate connectors``): stored in the database and picked up by
running processes within seconds (RCSGATE_CONNECTORS_REFRESH_SECONDS), without a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rcsgate.cli.common import JsonFlag, emit, fail, run
from rcsgate.clock import SystemClock

connectors_app = typer.Typer(
    help="Upstream connectors (Google RBM, SMPP): add, list, show, remove. Secrets are shown as fingerprints.",
    no_args_is_help=True,
)


@connectors_app.command("add-rbm")
def connectors_add_rbm(
    name: Annotated[str, typer.Argument(help="Connector name: 1-20 of a-z, 0-9, '-', '_'.")],
    agent_id: Annotated[str, typer.Option("--agent-id", help="Google's RBM agent id (…@rbm.goog).")],
    service_account: Annotated[
        Path,
        typer.Option(
            "--service-account",
            exists=True,
            dir_okay=False,
            readable=True,
            help="The agent's service-account key file (JSON); its token_uri is where tokens come from.",
        ),
    ],
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="RBM API root (default: Google's endpoint of --region).")
    ] = None,
    region: Annotated[str, typer.Option(help="europe, us or asia: which of Google's endpoints.")] = "europe",
    webhook_token: Annotated[
        str | None,
        typer.Option(
            "--webhook-token", help="The client token Google signs events with (set in Google's console)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a Google RBM connector; route agents to it with `rcsgate agents set-connector`."""
    from rcsgate.services import connectors

    try:
        key = json.loads(service_account.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read {service_account}: {exc}") from exc
    record = run(
        lambda db: connectors.add_rbm(
            db,
            SystemClock(),
            name=name,
            agent_id=agent_id,
            service_account=key,
            api_url=api_url,
            region=region,
            webhook_token=webhook_token,
        )
    )
    view = run(lambda db: connectors.view(db, record))
    emit(view, as_json, lambda: _text(view))


@connectors_app.command("add-smpp")
def connectors_add_smpp(
    name: Annotated[str, typer.Argument(help="Connector name: 1-20 of a-z, 0-9, '-', '_'.")],
    host: Annotated[str, typer.Option("--host", help="The SMSC's host name or IP address.")],
    port: Annotated[int, typer.Option("--port", help="The SMSC's SMPP port (often 2775).")],
    system_id: Annotated[str, typer.Option("--system-id", help="The account's system_id (1-15 characters).")],
    password: Annotated[
        str, typer.Option("--password", help="The account's password (at most 8 characters).")
    ],
    system_type: Annotated[
        str, typer.Option("--system-type", help="system_type, if the SMSC wants one.")
    ] = "",
    window: Annotated[
        int, typer.Option("--window", help="Submits outstanding at once; also the most a crash can resend.")
    ] = 10,
    rate: Annotated[
        float | None, typer.Option("--rate", help="At most this many PDUs per second (a 3-part SMS is 3).")
    ] = None,
    source_ton: Annotated[
        int | None, typer.Option("--source-ton", help="Source TON (default: 5 alphanumeric, 1 numeric).")
    ] = None,
    source_npi: Annotated[
        int | None, typer.Option("--source-npi", help="Source NPI (default: 0 alphanumeric, 1 numeric).")
    ] = None,
    long_messages: Annotated[
        str, typer.Option("--long-messages", help="udh, sar or payload: how long SMS are split.")
    ] = "udh",
    receipt_ids: Annotated[
        str,
        typer.Option(
            "--receipt-ids",
            help="same, hex-to-dec or dec-to-hex: the SMSC's ids in submit answers vs in receipts.",
        ),
    ] = "same",
    error_class: Annotated[
        list[str] | None,
        typer.Option(
            "--error-class",
            help="CODE=transient|permanent, overriding how a submit error is treated (repeatable).",
        ),
    ] = None,
    enquire_link: Annotated[
        float, typer.Option("--enquire-link", help="Seconds between keep-alives on an idle bind.")
    ] = 30.0,
    response_timeout: Annotated[
        float, typer.Option("--response-timeout", help="Seconds to wait for an answer to a PDU.")
    ] = 30.0,
    as_json: JsonFlag = False,
) -> None:
    """Add an SMPP 3.4 connector (a transceiver bind); route senders to it with `rcsgate senders
    set-connector`, or number prefixes with `rcsgate routes add`."""
    from rcsgate.services import connectors

    record = run(
        lambda db: connectors.add_smpp(
            db,
            SystemClock(),
            name=name,
            host=host,
            port=port,
            system_id=system_id,
            password=password,
            system_type=system_type,
            window=window,
            rate=rate,
            source_ton=source_ton,
            source_npi=source_npi,
            long_messages=long_messages,
            receipt_ids=receipt_ids,
            error_classes=error_class or [],
            enquire_link_seconds=enquire_link,
            response_timeout=response_timeout,
        )
    )
    view = run(lambda db: connectors.view(db, record))
    emit(view, as_json, lambda: _text(view))


@connectors_app.command("list")
def connectors_list(as_json: JsonFlag = False) -> None:
    """List the configured connectors."""
    from rcsgate.services import connectors

    async def views(db: Any) -> list[dict[str, Any]]:
        return [await connectors.view(db, r) for r in await connectors.list_all(db)]

    items = run(views)
    emit(
        items,
        as_json,
        lambda: (
            "\n".join(
                f"{v['name']} {v['kind']} {_where(v)} agents {v['agents']} senders {v['senders']}"
                for v in items
            )
            or "no connectors (every agent and sender uses the built-in simulator)"
        ),
    )


@connectors_app.command("show")
def connectors_show(name: str, as_json: JsonFlag = False) -> None:
    """One connector's settings (secrets as fingerprints) and what is routed to it."""
    from rcsgate.services import connectors

    async def show(db: Any) -> dict[str, Any]:
        return await connectors.view(db, await connectors.get(db, name))

    view = run(show)
    emit(view, as_json, lambda: _text(view))


@connectors_app.command("remove")
def connectors_remove(name: str, as_json: JsonFlag = False) -> None:
    """Remove a connector no agent, sender or route uses any more."""
    from rcsgate.services import connectors

    run(lambda db: connectors.remove(db, name))
    emit({"removed": name}, as_json, f"connector {name} removed")


def _where(view: dict[str, Any]) -> str:
    return str(view["api_url"]) if "api_url" in view else f"{view.get('host')}:{view.get('port')}"


def _text(view: dict[str, Any]) -> str:
    return "\n".join(f"{key}: {'' if value is None else value}" for key, value in view.items())
