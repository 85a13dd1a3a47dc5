"""How the local RBM hands events to the partner's webhook, the way Google's push delivery does:
one event per POST in the signed Pub/Sub envelope (``protocol.envelope``), through one queue,
each retried with capped exponential backoff until the receiver answers exactly 200 (Google
counts anything else, 204 included, as a failure). Up to ``concurrency`` events from the head of
the queue are in flight at once, as Pub/Sub push keeps several outstanding (so their order is not
guaranteed, as at Google); one failing event still holds back every event behind it, as Google
documents for a partner's shared queue. Nothing is dropped while the
pusher runs; Google gives up after 7 days, the local RBM never does.

Also here: ``RbmFaults`` (the simulator service's submit faults plus push faults: an event pushed
twice with the same eventId and envelope, DELIVERED after READ) and Google's webhook validation
handshake (``{"clientToken", "secret"}``, passed by a 200 answer whose body is exactly the secret).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import secrets
import string
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import aiohttp
from pydantic import Field
from yarl import URL

from rcsgate.clock import Clock
from rcsgate.connectors.rbm import protocol
from rcsgate.connectors.simulator_service import FaultConfig
from rcsgate.deadlines import Deadlines
from rcsgate.domain.backoff import exponential_delay
from rcsgate.logging_setup import get_logger
from rcsgate.webhooks.http_client import BadResponseError, Destination, WebhookClient, destination
from rcsgate.webhooks.url_policy import CallbackUrlError

log = get_logger("rcsgate.rbm_local")

# How long the pusher sleeps with nothing due; new events and wake() cut it short.
_IDLE_SECONDS: Final = 0.25
_COLLECT_EVERY: Final = 0.001  # seconds between looks for due reports while events wait
_USER_AGENT: Final = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


class RbmFaults(FaultConfig):
    """The simulator service's submit faults plus the ways Google's push delivery misbehaves."""

    duplicate_rate: float = Field(
        default=0.0, ge=0, le=1, description="push an event a second time (same eventId)"
    )
    out_of_order_rate: float = Field(
        default=0.0, ge=0, le=1, description="push a message's DELIVERED after its READ"
    )


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """Google's webhook validation: ``ok`` when the answer was 200 with exactly the secret as body."""

    ok: bool
    url: str
    secret: str
    status: int | None
    body: str
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "url": self.url,
            "secret": self.secret,
            "status": self.status,
            "body": self.body,
            "error": self.error,
        }


@dataclass(slots=True)
class Outgoing:
    event: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    seq: int
    duplicate: bool = False


def checked_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must be an http:// or https:// URL")
    return url


@functools.lru_cache(maxsize=16)
def _destination(url: str) -> Destination:
    return destination(URL(url))


def random_client_token() -> str:
    # Google's console shows client tokens as 16 upper-case letters.
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(16))


class EventPusher:
    """The push queue. ``collect`` moves due events into it (called before every look, so events
    that became due on the clock go out in due order); ``next_due`` tells how long to sleep."""

    def __init__(
        self,
        *,
        clock: Clock,
        client_token: str,
        webhook_url: str | None,
        faults: Callable[[], RbmFaults],
        collect: Callable[[], None],
        next_due: Callable[[], datetime | None],
        timeout: float = 10.0,
        retry_base: float = 0.1,
        retry_cap: float = 10.0,
        concurrency: int = 8,
    ) -> None:
        exponential_delay(1, base=retry_base, cap=retry_cap)  # refuses bad values now, not at a failure
        if not 1 <= concurrency <= 1000:
            raise ValueError("push concurrency must be 1-1000")
        self.concurrency = concurrency
        self.clock = clock
        self.client_token = client_token
        self.webhook_url = checked_url(webhook_url)
        self.timeout = timeout
        # One coarse deadline per push, not an asyncio.timeout (a loop timer each): see deadlines.py.
        self._deadlines = Deadlines()
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.queue: deque[Outgoing] = deque()
        self.pushed = 0
        self.duplicates_pushed = 0
        self.failures = 0
        self.last_error: str | None = None
        self.handshakes = 0
        self.last_handshake: HandshakeResult | None = None
        self._faults = faults
        self._collect = collect
        self._next_due = next_due
        self._seq = 0
        self._collected_at = 0.0  # loop time of the last look for due reports
        # The slots asleep in _idle, each on a future of its own: woken one per new event (see wake).
        self._sleepers: deque[asyncio.Future[None]] = deque()

    def wake(self, *, every_slot: bool = False) -> None:
        """Wake one sleeping slot (``every_slot``: all of them). Every new event calls this once, so
        there is a slot for each; slots that are busy look at the queue again when they are done.
        (One shared event woke all 256 slots of the benchmark's local RBM for every event, most of
        them only to find the queue empty again.)"""
        while self._sleepers:
            waiter = self._sleepers.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not every_slot:
                    return

    def set_webhook(self, url: str | None) -> None:
        self.webhook_url = checked_url(url)
        self.wake(every_slot=True)

    def prepare(self, event: dict[str, Any]) -> Outgoing:
        """The signed push of ``event``, built once: a retry or a duplicate is the very same push,
        as Pub/Sub redelivers it."""
        body, headers = protocol.envelope(event, self.client_token, now=self.clock.now())
        self._seq += 1
        return Outgoing(event, body, headers, self._seq)

    def enqueue(self, item: Outgoing) -> None:
        self.queue.append(item)

    async def run(self) -> None:
        """Push queued events to the webhook, one per POST, up to ``concurrency`` in flight (each
        slot takes the next event as soon as its own is answered), until cancelled."""
        # The webhook sender's lean HTTP/1.1 client, not aiohttp's: a push is a small POST whose
        # answer's status is all we need, and aiohttp's client took about three times its CPU, on the
        # 2 cores the benchmark shares between the local RBM, rcsgate and PostgreSQL. One kept
        # connection per slot (aiohttp's default pool of 100 had held the other slots back unseen).
        client = WebhookClient(user_agent=_USER_AGENT, max_idle_per_destination=self.concurrency)
        async with client:
            slots = [asyncio.create_task(self._slot(client)) for _ in range(self.concurrency)]
            try:
                await asyncio.gather(*slots)
            finally:
                for slot in slots:
                    slot.cancel()
                await asyncio.gather(*slots, return_exceptions=True)

    async def _slot(self, client: WebhookClient) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            # Due reports become events at most every millisecond while events are queued: each of
            # the 256 slots looking after each push cost ~15 % of the local RBM's CPU (clock reads).
            if not self.queue or loop.time() - self._collected_at >= _COLLECT_EVERY:
                self._collected_at = loop.time()
                self._collect()
            url = self.webhook_url
            if url is None or not self.queue:
                await self._idle()  # asleep from the look above on: no wake() in between is lost
                continue
            item = self.queue.popleft()
            error = await self._post(client, url, item)
            if error is None:
                failures = 0
                self.pushed += 1
                self.duplicates_pushed += item.duplicate
                self._maybe_duplicate(item)
                continue
            # Back at the head: it goes before anything queued behind it.
            self.queue.appendleft(item)
            failures += 1
            self.failures += 1
            self.last_error = error
            log.warning("rbm_local_push_failed", error=error, failures=failures, queued=len(self.queue))
            await asyncio.sleep(exponential_delay(failures, base=self.retry_base, cap=self.retry_cap))

    async def _idle(self) -> None:
        due = self._next_due()
        wait = _IDLE_SECONDS if due is None else (due - self.clock.now()).total_seconds()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(_IDLE_SECONDS, max(0.001, wait))):
                    await waiter
        finally:
            if not waiter.done():  # timed out or cancelled: no longer a sleeper to wake
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._sleepers.remove(waiter)

    def _maybe_duplicate(self, item: Outgoing) -> None:
        faults = self._faults()
        if item.duplicate or faults.duplicate_rate <= 0:
            return
        rng = random.Random(f"rbm-duplicate:{faults.seed}:{item.seq}")
        if rng.random() < faults.duplicate_rate:
            # At the tail, as a redelivery comes later, after whatever was queued meanwhile.
            self.queue.append(Outgoing(item.event, item.body, item.headers, item.seq, duplicate=True))

    async def _post(self, client: WebhookClient, url: str, item: Outgoing) -> str | None:
        try:
            async with self._deadlines.limit(self.timeout):
                # Any address, private ones included: the partner's webhook is often on this machine.
                status = await client.post(
                    _destination(url), body=item.body, headers=item.headers, allow_private=True
                )
        except TimeoutError:
            return "timeout"
        except (OSError, BadResponseError, CallbackUrlError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        return None if status == 200 else f"webhook answered {status}"

    async def validate_webhook(self, url: str | None = None) -> HandshakeResult:
        """Google's validation handshake against ``url`` (default: the webhook URL)."""
        target = checked_url(url) or self.webhook_url
        if target is None:
            raise ValueError("no webhook URL to validate")
        secret = "".join(secrets.choice(string.digits) for _ in range(10))
        payload = {"clientToken": self.client_token, "secret": secret}
        status: int | None = None
        text, error = "", None
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(target, json=payload) as response,
            ):
                status, text = response.status, (await response.read()).decode("utf-8", "replace")
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        result = HandshakeResult(status == 200 and text == secret, target, secret, status, text[:200], error)
        self.handshakes += 1
        self.last_handshake = result
        log.info("rbm_local_webhook_validated", ok=result.ok, url=target, status=status, error=error)
        return result
