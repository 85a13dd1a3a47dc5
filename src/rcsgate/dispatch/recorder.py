"""Writes what the upstream says — answers to submits and delivery reports — in as few
transactions as it can.

Callers hand over their part and wait until a transaction holding it has committed (or failed:
then each of them gets the error, and a report batch is redelivered by its connector). One
transaction runs at a time; what arrives meanwhile goes into the next one, together. Before
writing, the writer lets tasks that were already woken hand theirs in: with a fast upstream the
reports of a batch come in right after its answers, and written together each message's steps
(sending → sent → delivered → read) are a single write of its row (services/dispatching.record).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from rcsgate.clock import Clock
from rcsgate.connectors.base import Report
from rcsgate.services import dispatching
from rcsgate.services.dispatching import Applied, Outcome
from rcsgate.store.db import Database


@dataclass
class _Part:
    outcomes: Sequence[Outcome]
    reports: Sequence[Report]
    done: asyncio.Future[Applied] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def size(self) -> int:
        return len(self.outcomes) + len(self.reports)


class Recorder:
    def __init__(
        self, db: Database, clock: Clock, *, max_batch: int = 1000, mine: Collection[int] | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        # This process's claim holder ids (dispatching.record): answers for claims taken over since
        # by another holder are not recorded.
        self.mine = mine
        # Messages' worth of answers and reports per transaction, at most (a single part may exceed it).
        self.max_batch = max_batch
        self._queue: list[_Part] = []
        # Runs while there is something to write; its own task, so that no caller waits on others'
        # parts, and a caller cancelled while waiting does not stop the writing of the rest.
        self._writer: asyncio.Task[None] | None = None

    async def record(self, *, outcomes: Sequence[Outcome] = (), reports: Sequence[Report] = ()) -> Applied:
        """Returns once a transaction holding these has committed; what that transaction applied."""
        part = _Part(outcomes, reports)
        # Retrieved here, so a failure nobody waits for any more (a cancelled caller) is not logged.
        part.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(part)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="rcsgate-recorder")
        return await asyncio.shield(part.done)

    async def _write_all(self) -> None:
        while self._queue:
            # Let tasks already woken (typically the upstream's report delivery) add theirs.
            await asyncio.sleep(0)
            batch = self._take()
            try:
                applied = await dispatching.record(
                    self.db,
                    self.clock,
                    outcomes=[o for part in batch for o in part.outcomes],
                    reports=[r for part in batch for r in part.reports],
                    mine=self.mine,
                )
            except BaseException as exc:
                for part in batch:
                    _settle(part, exc)
                if not isinstance(exc, Exception):
                    for part in self._queue:
                        _settle(part, exc)
                    self._queue = []
                    raise
            else:
                for part in batch:
                    if not part.done.done():
                        part.done.set_result(applied)

    def _take(self) -> list[_Part]:
        batch: list[_Part] = []
        size = 0
        while self._queue and (not batch or size + self._queue[0].size <= self.max_batch):
            part = self._queue.pop(0)
            batch.append(part)
            size += part.size
        return batch


def _settle(part: _Part, exc: BaseException) -> None:
    if part.done.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        part.done.cancel()
    else:
        part.done.set_exception(exc)
