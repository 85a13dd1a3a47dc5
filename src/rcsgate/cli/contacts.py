"""The contact book (``rcsgate contacts``) and stop lists (``rcsgate stoplist``)."""

from __future__ import annotations

from typing import Annotated

import typer

from rcsgate.cli.common import run
from rcsgate.clock import SystemClock

contacts_app = typer.Typer(
    help="The contact book (test mode sends only to verified contacts).", no_args_is_help=True
)
stoplist_app = typer.Typer(help="Stop lists: numbers not to message on a channel.", no_args_is_help=True)


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
