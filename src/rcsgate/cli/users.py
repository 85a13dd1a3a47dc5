"""Web console users (``rcsgate users``): each signs in at /console/ and sees one account."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rcsgate.cli.common import JsonFlag, emit, fail, run
from rcsgate.clock import SystemClock
from rcsgate.store.db import Database

if TYPE_CHECKING:
    from rcsgate.services.console_users import UserInfo

users_app = typer.Typer(
    help="Web console users: each signs in at /console/ with an email and password and sees one account.",
    no_args_is_help=True,
)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from standard input (its first line), so it stays out of the shell's "
        "history and the process list.",
    ),
]


def user_view(user: UserInfo) -> dict[str, Any]:
    return {
        "id": user.id,
        "account_id": user.account_id,
        "email": user.email,
        "active": user.active,
        "created_at": user.created_at.isoformat(),
        "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
    }


def user_line(user: UserInfo) -> str:
    state = "active" if user.active else "disabled"
    return f"#{user.id} {user.email} account #{user.account_id} [{state}]"


def _read_password(from_stdin: bool) -> str:
    if not from_stdin:
        raise fail("give the password on standard input with --password-stdin")
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise fail("no password on standard input")
    return password


@users_app.command("create")
def users_create(
    account: Annotated[int, typer.Option("--account", help="The account the user sees.")],
    email: Annotated[str, typer.Option("--email", help="The user's email, their sign-in name.")],
    password_stdin: PasswordStdin = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a console user of an account (the password is stored as an argon2id hash)."""
    from rcsgate.services import console_users

    password = _read_password(password_stdin)

    async def action(db: Database) -> UserInfo:
        return await console_users.create_user(
            db, SystemClock(), account_id=account, email=email, password=password
        )

    user = run(action)
    emit(user_view(user), as_json, lambda: user_line(user))


@users_app.command("list")
def users_list(
    account: Annotated[int | None, typer.Option("--account", help="Only this account's users.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List console users."""
    from rcsgate.services import console_users

    users = run(lambda db: console_users.list_users(db, account_id=account))
    emit(
        [user_view(u) for u in users],
        as_json,
        lambda: "\n".join(user_line(u) for u in users) or "no users",
    )


@users_app.command("disable")
def users_disable(email: str, as_json: JsonFlag = False) -> None:
    """Disable a user: they can no longer sign in, and their sessions end at once."""
    from rcsgate.services import console_users

    user = run(lambda db: console_users.set_disabled(db, SystemClock(), email=email, disabled=True))
    emit(user_view(user), as_json, lambda: user_line(user))


@users_app.command("enable")
def users_enable(email: str, as_json: JsonFlag = False) -> None:
    """Enable a disabled user again."""
    from rcsgate.services import console_users

    user = run(lambda db: console_users.set_disabled(db, SystemClock(), email=email, disabled=False))
    emit(user_view(user), as_json, lambda: user_line(user))


@users_app.command("set-password")
def users_set_password(email: str, password_stdin: PasswordStdin = False, as_json: JsonFlag = False) -> None:
    """Set a user's password; their sessions end (they sign in again with the new one)."""
    from rcsgate.services import console_users

    password = _read_password(password_stdin)
    user = run(lambda db: console_users.set_password(db, SystemClock(), email=email, password=password))
    emit(user_view(user), as_json, lambda: user_line(user))
