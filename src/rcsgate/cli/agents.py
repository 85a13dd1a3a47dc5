"""RCS agents (``rcsgate agents``)."""

from __future__ import annotations

from typing import Annotated

import typer

from rcsgate.cli.common import JsonFlag, emit, fail, run
from rcsgate.clock import SystemClock

agents_app = typer.Typer(help="RCS agents (senders of RCS messages).", no_args_is_help=True)


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
                f"{f' connector #{a.connector_id}' if a.connector_id else ''}"
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


@agents_app.command("set-connector")
def agents_set_connector(
    agent_id: int,
    connector: Annotated[
        str, typer.Argument(help="A connector's name (rcsgate connectors list), or 'simulator'.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Send an agent's messages through a connector ('simulator': the built-in simulator again)."""
    from rcsgate.services import connectors

    record = run(lambda db: connectors.set_agent_connector(db, agent_id=agent_id, connector=connector))
    name = record.name if record else connectors.SIMULATOR
    emit({"agent_id": agent_id, "connector": name}, as_json, f"agent #{agent_id} sends through {name}")
