"""A local RBM (connectors/rbm/fake.py) on a loopback port, in a thread of its own, for tests that
drive rcsgate's real RBM connector against it over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from rcsgate.connectors.rbm.fake import LocalRbm
from rcsgate.services import connectors
from rcsgate.store.db import Database

T = TypeVar("T")

AGENT_ID = "rcsgate_test_agent@rbm.goog"
CLIENT_TOKEN = "LOCALTOKENSECRET"


class RbmThread:
    """Starts ``LocalRbm`` (zero latency unless told otherwise) on 127.0.0.1:<free port>."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("zero_latency", True)
        options.setdefault("client_token", CLIENT_TOKEN)
        options.setdefault("retry_cap", 0.5)
        self._options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.rbm: LocalRbm
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout=30)

    def __enter__(self) -> RbmThread:
        self.thread.start()

        async def start() -> None:
            self.rbm = LocalRbm(**self._options)
            self._runner = web.AppRunner(self.rbm.app, access_log=None, shutdown_timeout=0.5)
            await self._runner.setup()
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock).start()

        self.call(start)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            # Handlers still holding a slow answer: end them here rather than leave them pending.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        self.call(stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def key(self) -> dict[str, Any]:
        """A service-account key whose token_uri is this local RBM, trusted by it."""
        return self.call(self._key)

    async def _key(self) -> dict[str, Any]:
        return dict(self.rbm.new_key(f"{self.url}/token"))

    def on_loop(self, fn: Callable[[LocalRbm], T]) -> T:
        async def run() -> T:
            return fn(self.rbm)

        return self.call(run)

    def stats(self) -> dict[str, Any]:
        return self.on_loop(lambda r: r.stats_snapshot())

    def journal(self) -> list[dict[str, Any]]:
        now = self.on_loop(lambda r: r.clock.now())
        return self.on_loop(lambda r: [m.view(now) for m in r.messages.values()])

    def key_file(self, directory: Path) -> Path:
        path = directory / "rbm-key.json"
        path.write_text(json.dumps(self.key()))
        return path


async def add_connector(
    db: Database, clock: Any, rbm: RbmThread, key: dict[str, Any], *, name: str = "rbm1"
) -> None:
    from rcsgate.clock import SystemClock

    await connectors.add_rbm(
        db,
        clock or SystemClock(),
        name=name,
        agent_id=AGENT_ID,
        service_account=key,
        api_url=rbm.url,
        webhook_token=CLIENT_TOKEN,
    )
