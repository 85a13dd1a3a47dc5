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
            "\n".join(f"#{s.id} account {s.account_id} {s.name} {s.status}" for s in items) or "no senders"
        ),
    )
