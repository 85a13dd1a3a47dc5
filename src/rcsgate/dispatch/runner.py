"""Background loops of a process: started by ``rcsgate serve`` (beside the API) or ``rcsgate worker``.

A loop is an async callable that runs until the stop event is set (see dispatch/runtime.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from rcsgate.logging_setup import get_logger

log = get_logger("rcsgate.worker")

Loop = Callable[[asyncio.Event], Awaitable[None]]


@dataclass
class Workers:
    loops: Sequence[tuple[str, Loop]]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        for name, loop in self.loops:
            self.tasks.append(asyncio.create_task(self._guard(name, loop), name=name))
        log.info("workers_started", loops=[name for name, _ in self.loops])

    async def _guard(self, name: str, loop: Loop) -> None:
        # A loop that crashes is restarted after a pause: one bad row must not stop all work.
        while not self.stop.is_set():
            try:
                await loop(self.stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("worker_loop_crashed", loop=name, error=type(exc).__name__, exc_info=exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=1.0)

    async def shutdown(self, grace_seconds: float = 10.0) -> None:
        self.stop.set()
        if self.tasks:
            _done, pending = await asyncio.wait(self.tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        log.info("workers_stopped")


async def run_until_stopped(stop: asyncio.Event, loops: Sequence[tuple[str, Loop]]) -> None:
    workers = Workers(loops=loops, stop=stop)
    workers.start()
    await stop.wait()
    await workers.shutdown()
