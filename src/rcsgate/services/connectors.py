"""Connectors as configuration: add, list, show, remove; route agents, senders and number prefixes
to them."""

from __future__ import annotations

import re
from typing import Any, Final

from sqlalchemy.exc import IntegrityError

from rcsgate.clock import Clock
from rcsgate.connectors.rbm import settings as rbm_settings
from rcsgate.connectors.smpp import settings as smpp_settings
from rcsgate.domain.errors import InvalidInput, NotFound, Rejected
from rcsgate.domain.records import ConnectorRecord
from rcsgate.store import connectors as store
from rcsgate.store import senders as sender_store
from rcsgate.store import smpp as route_store
from rcsgate.store.db import Database
from rcsgate.store.smpp import Route

# Agents without a connector, and the name that puts one back there.
SIMULATOR: Final = "simulator"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,19}$")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput.field(
            "name", "A connector name is 1-20 characters: lower-case letters, digits, '-' and '_'."
        )
    if name == SIMULATOR:
        raise InvalidInput.field("name", f"{SIMULATOR!r} names the built-in simulator.")
    return name


async def add_rbm(
    db: Database,
    clock: Clock,
    *,
    name: str,
    agent_id: str,
    service_account: Any,
    api_url: str | None = None,
    region: str = "europe",
    webhook_token: str | None = None,
) -> ConnectorRecord:
    name = check_name(name)
    try:
        config, secrets = rbm_settings.build(
            agent_id=agent_id,
            service_account=service_account,
            api_url=api_url,
            region=region,
            webhook_token=webhook_token,
        )
    except ValueError as exc:
        raise InvalidInput.field("connector", str(exc)) from None
    return await _insert(db, clock, name=name, kind="rbm", config=config, secrets=secrets)


async def add_smpp(db: Database, clock: Clock, *, name: str, **options: Any) -> ConnectorRecord:
    """An SMPP connector (options: smpp_settings.build's); route senders to it with
    `rcsgate senders set-connector`, or number prefixes with `rcsgate routes add`."""
    name = check_name(name)
    try:
        config, secrets = smpp_settings.build(**options)
    except ValueError as exc:
        raise InvalidInput.field("connector", str(exc)) from None
    return await _insert(db, clock, name=name, kind="smpp", config=config, secrets=secrets)


async def _insert(
    db: Database, clock: Clock, *, name: str, kind: str, config: dict[str, Any], secrets: dict[str, Any]
) -> ConnectorRecord:
    try:
        async with db.write() as conn:
            await store.insert_connector(
                conn, name=name, kind=kind, config=config, secrets=secrets, now=clock.now()
            )
            record = await store.get_by_name(conn, name)
    except IntegrityError:
        raise InvalidInput.field("name", f"A connector named {name!r} exists already.") from None
    assert record is not None
    return record


async def get(db: Database, name: str) -> ConnectorRecord:
    async with db.read() as conn:
        record = await store.get_by_name(conn, name)
    if record is None:
        raise NotFound(f"Connector {name!r} was not found.")
    return record


async def list_all(db: Database) -> list[ConnectorRecord]:
    async with db.read() as conn:
        return await store.list_all(conn)


async def view(db: Database, record: ConnectorRecord) -> dict[str, Any]:
    """A connector as the CLI shows it: no secret, only fingerprints."""
    async with db.read() as conn:
        agents, senders = await store.users_of(conn, record.id)
    settings = (
        rbm_settings.shown(record.config, record.secrets)
        if record.kind == "rbm"
        else smpp_settings.shown(record.config, record.secrets)
    )
    return {
        "name": record.name,
        "kind": record.kind,
        **settings,
        "events_url_path": f"/api/upstream/{record.kind}/{record.name}" if record.kind == "rbm" else None,
        "agents": agents,
        "senders": senders,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


async def remove(db: Database, name: str) -> None:
    async with db.write() as conn:
        record = await store.get_by_name(conn, name)
        if record is None:
            raise NotFound(f"Connector {name!r} was not found.")
        agents, senders = await store.users_of(conn, record.id)
        used_by = [r.id for r in await route_store.list_routes(conn) if name in r.connectors]
        if agents or senders or used_by:
            users = (
                [f"agent {a}" for a in agents]
                + [f"sender {s}" for s in senders]
                + [f"route {r}" for r in used_by]
            )
            raise Rejected(
                f"Connector {name!r} is in use by {', '.join(users)}: route them elsewhere first "
                f"(e.g. `rcsgate agents set-connector ID {SIMULATOR}`, "
                f"`rcsgate senders set-connector ID {SIMULATOR}`, `rcsgate routes remove ID`)."
            )
        await store.delete_connector(conn, record.id)


async def set_agent_connector(db: Database, *, agent_id: int, connector: str) -> ConnectorRecord | None:
    """Route the agent's messages to ``connector`` (or back to the simulator); the connector, or None."""
    async with db.write() as conn:
        if await sender_store.get_agent(conn, agent_id) is None:
            raise NotFound(f"RCS agent {agent_id} was not found.")
        record = None
        if connector != SIMULATOR:
            record = await store.get_by_name(conn, connector)
            if record is None:
                raise NotFound(f"Connector {connector!r} was not found.")
            if record.kind != "rbm":
                raise InvalidInput.field(
                    "connector", f"{connector!r} is an {record.kind} connector, not RCS."
                )
        await store.set_agent_connector(conn, agent_id, record.id if record else None)
    return record


async def set_sender_connector(db: Database, *, sender_id: int, connector: str) -> ConnectorRecord | None:
    """Route the SMS sender's messages to ``connector`` (or back to the simulator); the connector, or
    None. A sender's own connector wins over routes."""
    async with db.write() as conn:
        if await sender_store.get_sender(conn, sender_id) is None:
            raise NotFound(f"SMS sender {sender_id} was not found.")
        record = None
        if connector != SIMULATOR:
            record = await store.get_by_name(conn, connector)
            if record is None:
                raise NotFound(f"Connector {connector!r} was not found.")
            if record.kind != "smpp":
                raise InvalidInput.field(
                    "connector", f"{connector!r} is an {record.kind} connector, not SMS."
                )
        await store.set_sender_connector(conn, sender_id, record.id if record else None)
    return record


# ------------------------------------------------------------------ routes

_PREFIX = re.compile(r"^[0-9]{0,15}$")


async def add_route(db: Database, clock: Clock, *, channel: str, prefix: str, names: list[str]) -> Route:
    """Messages of ``channel`` to numbers starting with ``prefix`` go to the first of ``names``
    whose link is up."""
    if channel != "sms":
        raise InvalidInput.field("channel", "Routes are for the sms channel (RCS goes by agent).")
    prefix = prefix.lstrip("+")
    if not _PREFIX.fullmatch(prefix):
        raise InvalidInput.field("prefix", "A prefix is up to 15 digits of the number (country code first).")
    if not names:
        raise InvalidInput.field("connectors", "Name at least one connector.")
    if len(set(names)) != len(names):
        raise InvalidInput.field("connectors", "A connector appears twice in the route.")
    try:
        async with db.write() as conn:
            for name in names:
                record = await store.get_by_name(conn, name)
                if record is None:
                    raise NotFound(f"Connector {name!r} was not found.")
                if record.kind != "smpp":
                    raise InvalidInput.field(
                        "connectors", f"{name!r} is an {record.kind} connector, not SMS."
                    )
            route_id = await route_store.insert_route(
                conn, channel=channel, prefix=prefix, names=names, now=clock.now()
            )
            route = await route_store.get_route(conn, route_id)
    except IntegrityError:
        raise InvalidInput.field(
            "prefix", f"A {channel} route for prefix {prefix or '(all numbers)'!r} exists already."
        ) from None
    assert route is not None
    return route


async def list_routes(db: Database) -> list[Route]:
    async with db.read() as conn:
        return await route_store.list_routes(conn)


async def remove_route(db: Database, route_id: int) -> None:
    async with db.write() as conn:
        if not await route_store.delete_route(conn, route_id):
            raise NotFound(f"Route {route_id} was not found.")
