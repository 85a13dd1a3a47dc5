"""Background loops of a process: started by ``rcsgate serve`` (beside the API) or ``rcsgate worker``.

A loop is an async callable that runs until the stop event is set (see dispatch/runtime.py).

A loop that crashes is restarted after a second. One that crashed because the database has no space
left (store/db.is_storage_full) is restarted after a pause that grows while that lasts, up to
``FULL_BACKOFF_MAX`` seconds, and says so once (the database logs when writes succeed again).

A stop sets the event and gives the loops ``GRACE_SECONDS`` to finish what they hold (the webhook
sender keeps its own wait for posts on the wire well inside it), then cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from rcsgate.logging_setup import get_logger
from rcsgate.store.db import is_storage_full

log = get_logger("rcsgate.worker")

GRACE_SECONDS: Final = 10.0
CRASH_PAUSE: Final = 1.0
FULL_BACKOFF_MAX: Final = 5.0
# A loop that ran this long since its last restart is in a new episode if the database fills again.
_EPISODE_SECONDS: Final = 60.0

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
        now = asyncio.get_running_loop().time
        full_pause = 0.0  # the last pause for a full database, 0 outside such an episode
        while not self.stop.is_set():
            started = now()
            try:
                await loop(self.stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_storage_full(exc):
                    if now() - started > _EPISODE_SECONDS:
                        full_pause = 0.0
                    if not full_pause:
                        log.warning("worker_loop_paused", loop=name, reason="database storage full")
                    full_pause = min(max(2 * full_pause, CRASH_PAUSE), FULL_BACKOFF_MAX)
                    pause = full_pause
                else:
                    full_pause = 0.0
                    log.error("worker_loop_crashed", loop=name, error=type(exc).__name__, exc_info=exc)
                    pause = CRASH_PAUSE
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=pause)

    async def shutdown(self, grace_seconds: float = GRACE_SECONDS) -> None:
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
