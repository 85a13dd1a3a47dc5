"""Single sends from concurrent requests, accepted together.

Each request hands its send to the process's batcher and waits for its own answer; one task takes
whatever has queued and accepts it as one batch (``sending.send_many``: one transaction, a few
statements for the whole batch), while the next requests queue. Under load the batches grow and the
cost per request falls; a lone request waits for nothing but its own transaction. A request is
answered only after the transaction holding its message has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rcsgate.clock import Clock
from rcsgate.domain.errors import DomainError
from rcsgate.domain.message_view import MessageView
from rcsgate.logging_setup import get_logger
from rcsgate.services import sending
from rcsgate.store.db import Database

log = get_logger("rcsgate.send_batcher")


@dataclass(slots=True)
class _Waiting:
    send: sending.SendRequest
    answer: asyncio.Future[MessageView]


def _identities(send: sending.SendRequest) -> list[tuple[str, int, str]]:
    """What two sends of one batch may not share (see ``sending.send_many``)."""
    account = send.account_id
    marks = [("body", account, send.key.body_hash)]
    if send.key.idempotency_key is not None:
        marks.append(("key", account, send.key.idempotency_key))
    if send.request.recipient.reference_id:
        marks.append(("reference", account, send.request.recipient.reference_id))
    return marks


class SendBatcher:
    MAX_BATCH = 500

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        duplicate_window: float,
        on_accepted: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.duplicate_window = duplicate_window
        self.on_accepted = on_accepted
        self._queue: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def send(self, send: sending.SendRequest) -> MessageView:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="send-batcher")
        waiting = _Waiting(send, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._wake.set()
        return await waiting.answer

    async def close(self) -> None:
        """Accept what has queued, then stop (in-flight requests still get their answers)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._accept(self._next_batch())
            if self._closing:
                return

    def _next_batch(self) -> list[_Waiting]:
        """Up to MAX_BATCH queued sends in arrival order; one that repeats an earlier one's body,
        key or reference waits for the next batch, which sees the earlier one's outcome."""
        batch: list[_Waiting] = []
        taken: set[tuple[str, int, str]] = set()
        held: list[_Waiting] = []
        while self._queue and len(batch) < self.MAX_BATCH:
            waiting = self._queue.popleft()
            if waiting.answer.done():  # the client went away before its turn
                continue
            marks = _identities(waiting.send)
            if taken.intersection(marks):
                held.append(waiting)
                continue
            taken.update(marks)
            batch.append(waiting)
        self._queue.extendleft(reversed(held))
        return batch

    async def _accept(self, batch: list[_Waiting]) -> None:
        if not batch:
            return
        try:
            outcomes = await sending.send_many(
                self.db, self.clock, [w.send for w in batch], duplicate_window=self.duplicate_window
            )
        except Exception as exc:  # the database is down, say: every request of the batch hears it
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return
        accepted = False
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                if not waiting.answer.done():
                    waiting.answer.set_exception(outcome)
            else:
                accepted = True
                if not waiting.answer.done():
                    waiting.answer.set_result(outcome)
        if accepted:
            with contextlib.suppress(Exception):
                self.on_accepted()
