"""Tariffs and their prices (``rcsgate tariffs``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from rcsgate.cli.common import JsonFlag, emit, fail, run
from rcsgate.clock import SystemClock
from rcsgate.domain.iso_codes import normalize_country
from rcsgate.domain.money import format_units

tariffs_app = typer.Typer(help="Tariffs and their prices per country and message kind.", no_args_is_help=True)


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

    try:
        country = normalize_country(country)
    except ValueError as exc:
        raise fail(str(exc)) from exc
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
