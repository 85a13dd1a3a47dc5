"""The connectors of a process: the built-in one (the simulator, embedded or over HTTP) and those the
operator configured in the database (`rcsgate connectors …`), with the agents routed to each.

``refresh`` reloads both; ``run`` calls it every ``refresh_seconds`` (2 s by default), so a change
made with the CLI reaches every running process within that, without a restart. A connector whose
configuration changed is rebuilt, and the old one stopped once its submits in flight have answered;
a removed one is stopped. Until the first refresh has succeeded, ``ready`` is unset and the
dispatcher claims nothing: an RBM-routed message must not slip to the simulator at startup.
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
from rcsgate.store.db import Database

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
        self._seen: list[tuple[int, str, datetime]] | None = None
        self._sink: ReportSink | None = None
        self.ready = asyncio.Event()

    # ------------------------------------------------------------------ routing

    def pick(self, message: OutboundMessage) -> Connector:
        """The connector that sends ``message``: its agent's, else the built-in one. An agent routed to
        a connector this process could not build gets one that answers TryLater: its messages wait
        (and retry with backoff), they never slip to another upstream."""
        if message.agent_id is not None:
            name = self._agents.get(message.agent_id)
            if name is not None:
                entry = self._connectors.get(name)
                return entry[1] if entry is not None else _Unavailable(name)
        return self.default

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
        if records is not None:
            await self._apply(records)
            self._seen = seen
        self._agents = agents
        self.ready.set()

    async def _apply(self, records: list[ConnectorRecord]) -> None:
        wanted = {r.name: r for r in records}
        retired: list[Connector] = []
        for name in list(self._connectors):
            updated_at, connector = self._connectors[name]
            record = wanted.get(name)
            if record is None or record.updated_at != updated_at:
                retired.append(connector)
                del self._connectors[name]
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
