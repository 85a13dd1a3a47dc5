"""Customer accounts (``rcsgate accounts``) and their API keys (``rcsgate keys``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rcsgate.cli.common import JsonFlag, emit, fail, load_settings, run
from rcsgate.clock import SystemClock
from rcsgate.domain.api_keys import parse_mode
from rcsgate.domain.money import format_units
from rcsgate.domain.records import Account
from rcsgate.store.db import Database

accounts_app = typer.Typer(help="Customer accounts: create, fund, configure.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of an account (shown once, stored hashed).", no_args_is_help=True)


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
    url: Annotated[
        str,
        typer.Argument(
            help="Public http(s) URL, at most 100 characters ('' to clear); loopback and private "
            "hosts only with RCSGATE_WEBHOOKS_ALLOW_PRIVATE=true."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Set the account's RCS callback URL (status and click webhooks)."""
    from rcsgate.services import accounts

    # Loopback and private hosts only where webhooks may go there (RCSGATE_WEBHOOKS_ALLOW_PRIVATE).
    allow_private = load_settings().webhooks_allow_private
    account = run(
        lambda db: accounts.set_callback_url(
            db, account_id=account_id, url=url or None, allow_private=allow_private
        )
    )
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
