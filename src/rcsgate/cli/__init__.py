"""``rcsgate``: the operator's command line. Every command reads RCSGATE_* settings (RCSGATE_DATABASE_URL).

Each command group lives in a module of its own that defines its ``typer.Typer``; this package root
registers the top-level commands, then the groups, in the order ``rcsgate --help`` lists them.
"""

from __future__ import annotations

import inspect
import sys

import typer

from rcsgate.cli import (
    accounts,
    agents,
    connectors,
    contacts,
    demo,
    processes,
    routes,
    senders,
    tariffs,
    users,
)

__all__ = ["app", "main"]

app = typer.Typer(
    help="rcsgate: self-hosted RCS business messaging (BSG One-API compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, not rich's panels: those cut every word that does not fit its column (a URL, a
    # variable name) with "…" at the terminal's width, 80 columns when piped. Click's help wraps
    # instead, up to 120 columns on a wide terminal (or COLUMNS), and loses nothing.
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)

for command in (processes.serve, processes.api, processes.worker, processes.simulator, demo.demo):
    app.command()(command)

app.add_typer(processes.db_app, name="db")
app.add_typer(accounts.accounts_app, name="accounts")
app.add_typer(accounts.keys_app, name="keys")
app.add_typer(users.users_app, name="users")
app.add_typer(agents.agents_app, name="agents")
app.add_typer(senders.senders_app, name="senders")
app.add_typer(tariffs.tariffs_app, name="tariffs")
app.add_typer(contacts.contacts_app, name="contacts")
app.add_typer(contacts.stoplist_app, name="stoplist")
app.add_typer(connectors.connectors_app, name="connectors")
app.add_typer(routes.routes_app, name="routes")


def _whole_short_help(typer_app: typer.Typer) -> None:
    """List every command with its whole first paragraph (wrapped), where click would cut it to the
    space left on the line and end it with "...": set each command's and group's short help."""

    def first_paragraph(text: object) -> str | None:
        if not isinstance(text, str) or not text.strip():
            return None
        return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())

    for command in typer_app.registered_commands:
        if command.short_help is None:
            doc = command.help or (command.callback.__doc__ if command.callback else None)
            command.short_help = first_paragraph(doc)
    for group in typer_app.registered_groups:
        if group.typer_instance is None:
            continue
        if not isinstance(group.short_help, str):
            short = first_paragraph(group.help) or first_paragraph(group.typer_instance.info.help)
            if short:
                group.short_help = short
        _whole_short_help(group.typer_instance)


_whole_short_help(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
