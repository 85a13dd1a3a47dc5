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
    db: Database, clock: Clock, smsc: SmscThread | Smpp34Thread, name: str = "smsc1", **options: Any
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


class Smpp34Thread:
    """``smpp34.Server`` (an SMSC nobody here wrote) on 127.0.0.1:<free port> in a thread: it accepts
    every submit with the id ``id_of(n)`` (n counts submits from 1) and keeps the events; ``receipt``
    sends a delivery receipt for an accepted id over the bound ESME."""

    def __init__(self, id_of: Callable[[int], str] = lambda n: f"Ab{n:04d}") -> None:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.id_of = id_of
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.submits: list[Any] = []
        self.esmes: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self._server: Any = None

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout=30)

    def __enter__(self) -> Smpp34Thread:
        import smpp34

        self.thread.start()

        async def serve() -> None:
            while True:
                event = await self._server.next()
                if isinstance(event, smpp34.Esme):
                    self.esmes.append(event)
                elif isinstance(event, smpp34.SubmitSmEvent):
                    self.submits.append(event)
                    event.accept(self.id_of(len(self.submits)))

        async def start() -> None:
            self._server = smpp34.Server("127.0.0.1", self.port, system_id="SMSC")
            await self._server.start()
            self._task = asyncio.create_task(serve())

        self.call(start)
        return self

    def receipt(self, smsc_id: str, destination: str, stat: str = "DELIVRD") -> int:
        """Send a receipt for ``smsc_id`` (text only: no TLVs) and return the ESME's command_status."""
        import smpp34

        text = (
            f"id:{smsc_id} sub:001 dlvrd:001 submit date:2612041200 done date:2612041201 "
            f"stat:{stat} err:000 text:x"
        ).encode()

        async def send() -> int:
            resp = await self.esmes[-1].deliver_sm("rcsgate", text, source_addr=destination, esm_class=0x04)
            return int(resp.command_status)

        del smpp34
        return self.call(send)

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._task is not None:
                self._task.cancel()
            await self._server.stop()

        try:
            self.call(stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
