"""The fake SMSC (connectors/smpp/fake_smsc.py) on a loopback port, in a thread of its own, for tests
that drive rcsgate's real SMPP connector against it over TCP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rcsgate.clock import Clock
from rcsgate.connectors.smpp.fake_smsc import FakeSmsc
from rcsgate.services import connectors
from rcsgate.store.db import Database

T = TypeVar("T")


class SmscThread:
    """``FakeSmsc(**options)`` on 127.0.0.1:<free port>; ``call``/``on_loop`` reach it on its loop."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.smsc: FakeSmsc
        self.port = 0

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout=30)

    def on_loop(self, fn: Callable[[FakeSmsc], T]) -> T:
        async def run() -> T:
            return fn(self.smsc)

        return self.call(run)

    def __enter__(self) -> SmscThread:
        self.thread.start()

        async def start() -> None:
            self.smsc = FakeSmsc(**self._options)
            self.port = await self.smsc.start()

        self.call(start)
        return self

    def stop_smsc(self) -> None:
        """Stop the SMSC (its binds drop); the thread stays for ``restart``."""
        self.call(self.smsc.stop)

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.smsc.stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


async def add_connector(
    db: Database, clock: Clock, smsc: SmscThread, name: str = "smsc1", **options: Any
) -> None:
    options.setdefault("window", 10)
    await connectors.add_smpp(
        db,
        clock,
        name=name,
        host="127.0.0.1",
        port=smsc.port,
        system_id="rcsgate",
        password="secret",
        response_timeout=options.pop("response_timeout", 2.0),
        enquire_link_seconds=options.pop("enquire_link_seconds", 5.0),
        **options,
    )
