"""The outbox sender: delivers webhook rows with retries, apart from the message pipeline.

A slow or dead receiver costs this loop a connection slot for at most the timeout; it never
holds a database transaction, and messages keep moving whatever receivers do.

Posting overlaps with the database work. One transaction at a time records the outcomes that
came in since the last one and claims what is due next, as per-message chains; meanwhile the
chains claimed before are being posted, each chain's deliveries one after the other (many chains
at once, at most ``per_receiver`` requests to one receiver at a time). A message's next delivery
goes only after its previous one was acknowledged, so receivers see each message's callbacks in
creation order.

A graceful stop (the stop event) claims nothing more, posts nothing more, and records everything:
deliveries claimed but not on the wire yet are handed back at once (due again, the claim's attempt
not counted), and posts on the wire get until ``stop_seconds`` after the stop to be answered — well
inside the runner's grace (dispatch/runner.py), which cancels what is still running after it. A
post cut there is recorded as an attempt whose answer never came, due again at once (at least once,
as after a timeout). Posting everything claimed instead (up to ``max_in_flight`` deliveries, behind
a slow receiver's slots) could outlast that grace, and its cancellation would leave posts the
receiver already had unrecorded, to be posted again when their claims ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from rcsgate.clock import Clock
from rcsgate.domain.backoff import IdleWait, retry_delay
from rcsgate.logging_setup import get_logger
from rcsgate.metrics.instruments import status_class, webhook_attempts
from rcsgate.store import webhooks as store
from rcsgate.store.db import Database, after_commit, is_storage_full
from rcsgate.webhooks.http_client import WebhookClient
from rcsgate.webhooks.http_delivery import DeliveryResult, make_client, post_webhook, receiver_key
from rcsgate.webhooks.signing import signed_headers

if TYPE_CHECKING:
    from rcsgate.dispatch.liveness import ClaimHolder

log = get_logger("rcsgate.webhooks")

# An outcome to record: the delivery, and what its POST gave (None: not attempted, because an
# earlier delivery of its message was not acknowledged).
Outcome = tuple[Row[Any], DeliveryResult | None]
Chains = tuple[list[list[Row[Any]]], dict[int, str]]

# The error recorded for a post that a graceful stop cut before its receiver answered.
STOPPED_ERROR = "the sender stopped before the receiver answered"


class WebhookSender:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        schedule: Sequence[float],
        allow_private: bool,
        timeout_seconds: float = 10.0,
        concurrency: int = 200,
        per_receiver: int = 32,
        batch_size: int = 500,
        max_in_flight: int = 1000,
        poll_seconds: float = 0.05,
        idle_seconds: float = 1.0,
        linger_seconds: float = 0.01,
        lease_seconds: float = 120.0,
        stop_seconds: float = 5.0,
        wake: asyncio.Event | None = None,
        holder: ClaimHolder | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.schedule = tuple(schedule)
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self.concurrency = concurrency
        self.per_receiver = per_receiver
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.poll_seconds = poll_seconds
        # Looks for due deliveries come less often while they find nothing.
        self.idle = IdleWait(poll_seconds, idle_seconds)
        # How long a round waits for more outcomes and outbox rows before its transaction, while
        # posts are in flight: one transaction then records and claims many.
        self.linger_seconds = linger_seconds
        self.lease_seconds = lease_seconds
        # This process's liveness (dispatch/liveness.py): claims carry its id, and no POST starts
        # unless it is fresh for the timeout. None: claims only their leases free.
        self.holder = holder
        # How long a graceful stop waits for posts on the wire (see the module docstring).
        self.stop_seconds = stop_seconds
        # Set when deliveries may have become due (new outbox rows); outcomes wake the loop too.
        self.wake = wake or asyncio.Event()
        self._rng = random.Random()
        self._outcomes: list[Outcome] = []
        self._busy = asyncio.Event()  # an outcome arrived, or a wake-up: the loop has work
        self._in_flight = 0  # deliveries claimed and not yet recorded
        self._posting = 0  # deliveries claimed and not yet posted
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._stop: asyncio.Event | None = None
        # Once stopping: the loop time at which posts still on the wire are cut; and those posts'
        # timeouts, to bring forward to it.
        self._cutoff: float | None = None
        self._wire: set[asyncio.Timeout] = set()
        self._full_pause = 0.0  # the last pause while the database is full, 0 otherwise

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._cutoff = None
        client = make_client()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set() or self._in_flight:
                await self._round(stop, client, tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
            # Cancelled or crashed: what was claimed and not recorded stays claimed until its lease
            # ends. A restarted run (dispatch/runner.py) must not wait for it.
            self._outcomes = []
            self._in_flight = self._posting = 0

    def _begin_stop(self) -> None:
        """Bound the wait for the posts on the wire; those waiting for a slot go back untried."""
        self._cutoff = asyncio.get_running_loop().time() + self.stop_seconds
        for cut in self._wire:
            when = cut.when()
            cut.reschedule(self._cutoff if when is None else min(when, self._cutoff))
        log.info("webhooks_stopping", claimed=self._in_flight, on_the_wire=len(self._wire))

    async def _round(
        self, stop: asyncio.Event, client: WebhookClient, tasks: set[asyncio.Task[None]]
    ) -> None:
        """Wait for work, then one transaction: record the outcomes in, claim what is due (not when
        stopping: a graceful stop only records, see the module docstring)."""
        stopping = stop.is_set()
        if stopping:
            # Only outcomes matter now.
            if not self._outcomes:
                await _wait_any(self._busy, seconds=self.poll_seconds)
        elif not self._outcomes and not self.wake.is_set():
            await _wait_any(self._busy, self.wake, stop, seconds=self.idle.next())
            if self.wake.is_set() or self._busy.is_set():
                self.idle.found()
        if stop.is_set():
            stopping = True
            if self._cutoff is None:
                self._begin_stop()
        if self._posting and not stopping:
            await asyncio.sleep(self.linger_seconds)
        self.wake.clear()
        self._busy.clear()
        outcomes, self._outcomes = self._outcomes, []
        room = self.max_in_flight - self._in_flight + len(outcomes)
        limit = 0 if stopping or room < self.batch_size // 4 else min(self.batch_size, room)
        holder_id = self._holder_id() if limit else None
        if holder_id is False:
            # Not registered, or beats failing: claim nothing that could not be posted.
            limit = 0
            holder_id = None
            if not outcomes:
                await _wait_any(stop, seconds=max(self.poll_seconds, 0.2))
                return
        if not outcomes and not limit:
            return
        try:
            chains, secrets = await self._record_and_claim(outcomes, limit, holder_id)
        except Exception as exc:
            # The database is away: keep the outcomes and try again shortly (a lease that ends
            # meanwhile only means a duplicate POST, never a lost one).
            self._outcomes[:0] = outcomes
            pause = 1.0
            if is_storage_full(exc):
                # Says so once (so does the database); tries less often while it lasts.
                if not self._full_pause:
                    log.warning("webhooks_paused", reason="database storage full", outcomes=len(outcomes))
                pause = self._full_pause = min(max(2 * self._full_pause, 1.0), 5.0)
            else:
                log.error("webhook_round_failed", outcomes=len(outcomes), error=type(exc).__name__)
            if stopping:
                await asyncio.sleep(min(pause, 1.0))
            else:
                await _wait_any(stop, seconds=pause)
            return
        self._full_pause = 0.0
        self._in_flight -= len(outcomes)
        if chains:
            self.idle.found()
        # A delivery still waiting for a slot (behind a slow receiver) when its claim is about to
        # run out is handed back instead: posted after the lease, it could go twice.
        deadline = time.monotonic() + self.lease_seconds - self.timeout_seconds - 1.0
        for chain in chains:
            self._in_flight += len(chain)
            self._posting += len(chain)
            task = asyncio.create_task(
                self._post_chain(client, chain, secrets.get(int(chain[0].account_id), ""), deadline)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if len(chains) and limit and sum(len(c) for c in chains) >= limit:
            self.wake.set()  # a full batch: more may be due at once

    def _holder_id(self) -> int | Literal[False] | None:
        """The id to claim under (None without a holder), or False when nothing should be claimed now."""
        if self.holder is None:
            return None
        holder_id = self.holder.id
        if holder_id is None or not self.holder.fresh(holder_id, self.timeout_seconds):
            return False
        return holder_id

    async def _record_and_claim(self, outcomes: list[Outcome], limit: int, holder_id: int | None) -> Chains:
        now = self.clock.now()
        async with self.db.write() as conn:
            if outcomes:
                await self._record(conn, outcomes, now)
            if not limit:
                return [], {}
            return await store.claim_chains(
                conn,
                now=now,
                lease_until=now + timedelta(seconds=self.lease_seconds),
                limit=limit,
                skip_locked=not self.db.is_sqlite,
                holder=holder_id,
            )

    async def _post_chain(
        self, client: WebhookClient, chain: list[Row[Any]], secret: str, deadline: float
    ) -> None:
        for i, row in enumerate(chain):
            try:
                result = await self._post(client, row, secret, deadline)
            except Exception as exc:  # a bug here must not leave the chain claimed until its lease ends
                log.error("webhook_post_error", delivery_id=row.id, error=type(exc).__name__, exc_info=exc)
                result = DeliveryResult("retry", None, f"internal error: {type(exc).__name__}", 0.0)
            if result is None:  # not attempted: this one and the rest go back
                for later in chain[i:]:
                    self._done(later, None)
                return
            self._done(row, result)
            if result.outcome != "delivered":
                for later in chain[i + 1 :]:
                    self._done(later, None)
                return

    def _done(self, row: Row[Any], result: DeliveryResult | None) -> None:
        self._outcomes.append((row, result))
        self._posting -= 1
        self._busy.set()

    async def _post(
        self, client: WebhookClient, row: Row[Any], secret: str, deadline: float
    ) -> DeliveryResult | None:
        """The attempt's result, or None if it was not made (the claim is running out)."""
        body = row.body.encode()
        gate = self._gate(row.url)
        async with self._slots, gate:
            if time.monotonic() > deadline or (self._stop is not None and self._stop.is_set()):
                return None
            if self.holder is not None and not self.holder.fresh(row.holder_id, self.timeout_seconds):
                return None  # the claim could be freed and posted by another sender meanwhile
            # The signature timestamp is wall time: receivers compare it with their own clocks.
            headers = signed_headers(
                secret=secret, webhook_id=row.webhook_id, timestamp=datetime.now(UTC), body=body
            )
            started = time.perf_counter()
            try:
                # No limit of its own until a stop sets one (post_webhook has its timeout).
                async with asyncio.timeout_at(self._cutoff) as cut:
                    self._wire.add(cut)
                    try:
                        return await post_webhook(
                            client,
                            url=row.url,
                            body=body,
                            headers=headers,
                            timeout_s=self.timeout_seconds,
                            allow_private=self.allow_private,
                        )
                    finally:
                        self._wire.discard(cut)
            except TimeoutError:  # cut by the stop (post_webhook turns its own timeout into a result)
                return DeliveryResult("retry", None, STOPPED_ERROR, (time.perf_counter() - started) * 1000.0)

    def _gate(self, url: str) -> asyncio.Semaphore:
        """The concurrency limit of the receiver (scheme, host and port) behind ``url``: one slow
        receiver holds at most its own slots, never all of them."""
        key = receiver_key(url)
        gate = self._gates.get(key)
        if gate is None:
            if len(self._gates) > 10_000:
                # Forget idle receivers now and then; a gate in use is kept by its waiters anyway.
                self._gates = {k: g for k, g in self._gates.items() if g.locked()}
            gate = self._gates[key] = asyncio.Semaphore(self.per_receiver)
        return gate

    async def _record(self, conn: AsyncConnection, outcomes: list[Outcome], now: datetime) -> None:
        delivered = [
            (row.id, result.status_code)
            for row, result in outcomes
            if result is not None and result.outcome == "delivered"
        ]
        await store.mark_delivered(conn, items=delivered, now=now)
        untried: dict[int | None, list[int]] = {}
        for row, result in outcomes:
            if result is None:
                untried.setdefault(row.holder_id, []).append(row.id)
        for holder_id, ids in untried.items():
            await store.release(conn, ids=ids, now=now, holder=holder_id)
        # Attempts by (outcome, status class), counted once this transaction commits.
        attempts: dict[tuple[str, str], int] = {}
        after_commit(lambda: webhook_attempts(attempts))
        for row, result in outcomes:
            if result is None:
                continue
            if result.outcome == "delivered":
                key = ("delivered", status_class(result.status_code))
                attempts[key] = attempts.get(key, 0) + 1
                continue
            if result.error == STOPPED_ERROR and result.status_code is None:
                delay: float | None = 0.0  # the stop's doing, not the receiver's: due again at once
            elif result.outcome == "retry":
                delay = retry_delay(row.attempts, self.schedule, rng=self._rng)
            else:
                delay = None
            key = ("retry" if delay is not None else "failed", status_class(result.status_code))
            attempts[key] = attempts.get(key, 0) + 1
            if delay is None:
                await store.mark_failed(
                    conn, delivery_id=row.id, status_code=result.status_code, error=result.error
                )
                log.warning("webhook_gave_up", delivery_id=row.id, attempts=row.attempts, error=result.error)
            else:
                await store.mark_retry(
                    conn,
                    delivery_id=row.id,
                    status_code=result.status_code,
                    error=result.error,
                    next_attempt_at=now + timedelta(seconds=delay),
                )


async def _wait_any(*events: asyncio.Event, seconds: float) -> None:
    """Until one of ``events`` is set, or ``seconds`` pass."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
