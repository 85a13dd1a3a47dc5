"""The connectors of a process: the built-in one (the simulator, embedded or over HTTP) and those the
operator configured in the database (`rcsgate connectors …`), with the agents routed to each.

``refresh`` reloads both; ``run`` calls it every ``refresh_seconds`` (2 s by default), so a change
made with the CLI reaches every running process within that, without a restart. A connector whose
configuration changed is rebuilt, and the old one stopped once its submits in flight have answered;
a removed one is stopped. Until the first refresh has succeeded, ``ready`` is unset and the
dispatcher claims nothing: an RBM-routed message must not slip to the simulator at startup.

SMS goes by its sender's own connector, else by the longest-prefix route whose connectors are
tried in order (the first whose link is up takes it: failover), else the built-in connector.
SMPP binds are long-lived sessions that one process at a time may hold (an SMSC caps binds per
account, and receipts must be acknowledged by whoever keeps them): the process holding the SMPP
lock runs them all and is the only one that claims SMS while any SMPP connector is configured;
if it dies, another takes the lock at its next refresh and binds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from rcsgate.connectors.base import (
    Connector,
    OutboundMessage,
    ReportSink,
    RevokeResult,
    SubmitResult,
    TryLater,
)
from rcsgate.domain.records import ConnectorRecord
from rcsgate.logging_setup import get_logger
from rcsgate.store import connectors as store
from rcsgate.store import smpp as smpp_store
from rcsgate.store.db import Database
from rcsgate.store.signals import SMPP_LOCK, SingletonLock

log = get_logger("rcsgate.connectors")

Builder = Callable[[ConnectorRecord], Connector]


class ConnectorRegistry:
    def __init__(
        self, *, db: Database, default: Connector, build: Builder, refresh_seconds: float = 2.0
    ) -> None:
        self.db = db
        self.default = default
        self._build = build
        self.refresh_seconds = refresh_seconds
        self._connectors: dict[str, tuple[datetime, Connector]] = {}
        self._agents: dict[int, str] = {}
        self._senders: dict[tuple[int, str], str] = {}
        # (prefix, connector names), longest prefix first.
        self._routes: list[tuple[str, list[str]]] = []
        self._seen: list[tuple[int, str, datetime]] | None = None
        self._smpp_lock = SingletonLock(db, SMPP_LOCK)
        self._smpp_configured = False
        self._smpp_holder = False
        self._sink: ReportSink | None = None
        self.ready = asyncio.Event()

    # ------------------------------------------------------------------ routing

    def pick(self, message: OutboundMessage) -> Connector:
        """The connector that sends ``message``: its agent's, else the built-in one. An agent routed to
        a connector this process could not build gets one that answers TryLater: its messages wait
        (and retry with backoff), they never slip to another upstream."""
        if message.channel == "sms":
            return self._pick_sms(message)
        if message.agent_id is not None:
            name = self._agents.get(message.agent_id)
            if name is not None:
                entry = self._connectors.get(name)
                return entry[1] if entry is not None else _Unavailable(name)
        return self.default

    def _pick_sms(self, message: OutboundMessage) -> Connector:
        if message.account_id is not None:
            name = self._senders.get((message.account_id, message.sender))
            if name is not None:
                entry = self._connectors.get(name)
                return entry[1] if entry is not None else _Unavailable(name)
        for prefix, names in self._routes:
            if message.phone.startswith(prefix):
                usable = [self._connectors[n][1] for n in names if n in self._connectors]
                for connector in usable:
                    if link_up(connector):
                        return connector
                # Every link is down: the message waits (retried with backoff) for one to come up.
                return _Unavailable(f"{names[0]}" if len(names) == 1 else f"of route {prefix or '*'}")
        return self.default

    @property
    def claims_sms(self) -> bool:
        """Whether this process may claim SMS messages: with SMPP connectors configured, only the
        process holding their binds does (see the module docstring)."""
        return not self._smpp_configured or self._smpp_holder

    def named(self, name: str | None) -> Connector | None:
        """The connector a message was sent through (its ``upstream`` column); None for the built-in one
        or no upstream, a stand-in answering TryLater for a configured one this process lacks."""
        if name is None or name == self.default.name:
            return None
        entry = self._connectors.get(name)
        return entry[1] if entry else _Unavailable(name)

    @property
    def revoking(self) -> set[str]:
        """Names of the connectors whose messages are revoked before they expire."""
        return {name for name, (_, c) in self._connectors.items() if c.revokes}

    def admits(self) -> int | None:
        """How many messages to claim: the built-in connector's limit while it is the only one; with
        configured connectors each message finds its own connector's breaker at submit."""
        return self.default.admits() if not self._connectors else None

    @property
    def all(self) -> list[Connector]:
        return [self.default, *(c for _, c in self._connectors.values())]

    # ------------------------------------------------------------------ life

    async def start(self, sink: ReportSink) -> None:
        self._sink = sink
        await self.default.start(sink)
        with contextlib.suppress(Exception):
            await self.refresh()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_seconds)
            if stop.is_set():
                return
            try:
                await self.refresh()
            except Exception as exc:  # the database may be away for a while: keep what we have
                log.warning("connectors_refresh_failed", error=type(exc).__name__)

    async def refresh(self) -> None:
        async with self.db.read() as conn:
            seen = await store.fingerprint(conn)
            records = await store.list_all(conn) if seen != self._seen else None
            agents = await store.agent_routes(conn)
            senders = await smpp_store.sender_routes(conn)
            routes = [r for r in await smpp_store.list_routes(conn) if r.channel == "sms"]
            self._smpp_configured = await store.has_kind(conn, "smpp")
        holder = await self._hold_smpp() if self._smpp_configured else False
        if not holder:
            await self._smpp_lock.release()
        if holder != self._smpp_holder:
            self._smpp_holder = holder
            log.info("smpp_binds_" + ("taken" if holder else "released"))
            if records is None:
                async with self.db.read() as conn:
                    records = await store.list_all(conn)
        if records is not None:
            await self._apply(records)
            self._seen = seen
        self._agents = agents
        self._senders = senders
        self._routes = sorted(((r.prefix, r.connectors) for r in routes), key=lambda r: -len(r[0]))
        self.ready.set()

    async def _hold_smpp(self) -> bool:
        try:
            return await self._smpp_lock.held()
        except Exception as exc:  # the lock's connection died: the binds must go, another may take them
            log.warning("smpp_lock_lost", error=type(exc).__name__)
            return False

    async def _apply(self, records: list[ConnectorRecord]) -> None:
        wanted = {r.name: r for r in records}
        retired: list[Connector] = []
        for name in list(self._connectors):
            updated_at, connector = self._connectors[name]
            record = wanted.get(name)
            if record is None or record.updated_at != updated_at:
                retired.append(connector)
                del self._connectors[name]
        if not self._smpp_holder:
            # Another process holds the binds: none here (their messages are not claimed here).
            wanted = {n: r for n, r in wanted.items() if r.kind != "smpp"}
            for name in [n for n, (_, c) in self._connectors.items() if n not in wanted]:
                retired.append(self._connectors.pop(name)[1])
        for name, record in wanted.items():
            if name in self._connectors:
                continue
            try:
                connector = self._build(record)
            except Exception as exc:
                log.error("connector_unusable", connector=name, kind=record.kind, error=str(exc)[:200])
                continue
            if self._sink is not None:
                await connector.start(self._sink)
            self._connectors[name] = (record.updated_at, connector)
            log.info("connector_loaded", connector=name, kind=record.kind)
        for connector in retired:
            log.info("connector_retired", connector=connector.name)
            await connector.stop()

    async def stop(self) -> None:
        connectors = [c for _, c in self._connectors.values()]
        self._connectors = {}
        for connector in [*connectors, self.default]:
            await connector.stop()
        await self._smpp_lock.release()
        self._smpp_holder = False


def link_up(connector: Connector) -> bool:
    """Whether a connector can take a message now: bound (SMPP) and its circuit not open."""
    return bool(getattr(connector, "link_up", True)) and connector.admits() != 0


class _Unavailable:
    """Stands in for a configured connector this process cannot use (see ``pick``)."""

    revokes: bool = True

    def __init__(self, name: str) -> None:
        self.name = name

    def admits(self) -> int | None:
        return None

    async def submit(self, message: OutboundMessage) -> SubmitResult:
        return TryLater(f"connector {self.name} is unavailable in this process")

    async def revoke(self, message: OutboundMessage) -> RevokeResult:
        return TryLater(f"connector {self.name} is unavailable in this process")

    async def start(self, sink: ReportSink) -> None:
        return None

    async def stop(self) -> None:
        return None
