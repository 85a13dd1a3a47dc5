"""Routes with failover (``rcsgate routes``): which connectors take a channel's messages, by number
prefix. The first connector of a route whose link is up takes the message; a sender's own
connector wins over routes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rcsgate.cli.common import JsonFlag, emit, run
from rcsgate.clock import SystemClock

routes_app = typer.Typer(
    help="Routes with failover: the connectors that take SMS, by number prefix.", no_args_is_help=True
)


def _view(route: Any) -> dict[str, Any]:
    return {
        "id": route.id,
        "channel": route.channel,
        "prefix": route.prefix,
        "connectors": route.connectors,
        "created_at": route.created_at,
    }


def _line(view: dict[str, Any]) -> str:
    return f"#{view['id']} {view['channel']} {view['prefix'] or '*'} -> {' > '.join(view['connectors'])}"


@routes_app.command("add")
def routes_add(
    connectors_: Annotated[
        list[str], typer.Argument(metavar="CONNECTOR...", help="Connectors in the order they are tried.")
    ],
    channel: Annotated[str, typer.Option("--channel", help="The channel routed: sms.")] = "sms",
    prefix: Annotated[
        str, typer.Option("--prefix", help="Numbers starting with these digits (default: every number).")
    ] = "",
    as_json: JsonFlag = False,
) -> None:
    """Route a channel's messages (to numbers starting with --prefix; the longest prefix wins) to the
    first of the connectors whose link is up."""
    from rcsgate.services import connectors

    route = run(
        lambda db: connectors.add_route(db, SystemClock(), channel=channel, prefix=prefix, names=connectors_)
    )
    view = _view(route)
    emit(view, as_json, lambda: _line(view))


@routes_app.command("list")
def routes_list(as_json: JsonFlag = False) -> None:
    """List the routes."""
    from rcsgate.services import connectors

    views = [_view(r) for r in run(connectors.list_routes)]
    emit(views, as_json, lambda: "\n".join(_line(v) for v in views) or "no routes")


@routes_app.command("remove")
def routes_remove(route_id: int, as_json: JsonFlag = False) -> None:
    """Remove a route."""
    from rcsgate.services import connectors

    run(lambda db: connectors.remove_route(db, route_id))
    emit({"removed": route_id}, as_json, f"route #{route_id} removed")
