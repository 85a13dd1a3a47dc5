"""SMS senders (``rcsgate senders``)."""

from __future__ import annotations

from typing import Annotated

import typer

from rcsgate.cli.common import JsonFlag, emit, run
from rcsgate.clock import SystemClock

senders_app = typer.Typer(help="SMS senders (used by the SMS alternative channel).", no_args_is_help=True)


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
            "\n".join(
                f"#{s.id} account {s.account_id} {s.name} {s.status}"
                f"{f' connector #{s.connector_id}' if s.connector_id else ''}"
                for s in items
            )
            or "no senders"
        ),
    )


@senders_app.command("set-connector")
def senders_set_connector(
    sender_id: Annotated[int, typer.Argument(help="The sender's id (rcsgate senders list).")],
    connector: Annotated[
        str, typer.Argument(help="An SMPP connector's name (rcsgate connectors list), or 'simulator'.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Send an SMS sender's messages through a connector ('simulator': by route, else the built-in
    simulator, again). A sender's own connector wins over routes."""
    from rcsgate.services import connectors

    record = run(lambda db: connectors.set_sender_connector(db, sender_id=sender_id, connector=connector))
    name = record.name if record else connectors.SIMULATOR
    emit({"sender_id": sender_id, "connector": name}, as_json, f"sender #{sender_id} sends through {name}")
