"""One webhook delivery attempt over HTTP, classified for the retry scheduler.

The function never raises for anything the receiver or the network does: every outcome is a
:class:`DeliveryResult`, so one misbehaving customer endpoint cannot crash a dispatch worker.
Secrets and request headers never appear in results, because results are persisted and shown
to customers in delivery logs. The HTTP exchange itself is webhooks/http_client.py's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from yarl import URL

from rcsgate import __version__
from rcsgate.webhooks.http_client import (
    MAX_BODY_BYTES,
    BadResponseError,
    Destination,
    WebhookClient,
    destination,
)
from rcsgate.webhooks.url_policy import CallbackUrlError, check_callback_url

__all__ = [
    "MAX_RESPONSE_BYTES",
    "DeliveryResult",
    "Outcome",
    "make_client",
    "post_webhook",
    "receiver_key",
]

Outcome = Literal["delivered", "retry", "give_up"]

# Receivers' answers are never used; reading a little lets keep-alive work for well-behaved
# receivers while capping what a hostile one can make us buffer.
MAX_RESPONSE_BYTES = MAX_BODY_BYTES
_MAX_ERROR_CHARS = 500
_USER_AGENT = f"rcsgate-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Outcome
    status_code: int | None
    error: str | None
    duration_ms: float


def make_client() -> WebhookClient:
    """A client for webhook delivery (one per process is enough; close it when done)."""
    return WebhookClient(user_agent=_USER_AGENT)


@lru_cache(maxsize=4096)
def _target(url: str, allow_private: bool) -> tuple[URL, Destination]:
    """The checked, parsed form of a callback URL. Cached because every delivery to an account's
    URL repeats the same pure checks; DNS answers are not cached (each new connection resolves and
    checks the addresses it connects to)."""
    check_callback_url(url, allow_private=allow_private)
    target = URL(url)
    return target, destination(target)


@lru_cache(maxsize=4096)
def receiver_key(url: str) -> str:
    """Who receives deliveries to ``url`` (scheme, host and port), for per-receiver limits."""
    try:
        target = URL(url)
        return f"{target.scheme}://{target.raw_host}:{target.port}"
    except ValueError:
        return url


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _scrub(text: str, target: URL | None) -> str:
    # Error messages can echo the URL, which may carry basic-auth credentials.
    if target is not None and target.password:
        text = text.replace(target.password, "***")
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _classify(status: int) -> tuple[Outcome, str | None]:
    if 200 <= status < 300:
        return "delivered", None
    if status == 410:
        # 410 Gone is the receiver saying "stop sending here"; retrying would be pointless.
        return "give_up", f"HTTP {status}"
    # Redirects are not followed (a redirect could point at an internal address), and 4xx may be
    # a receiver misconfiguration that gets fixed, so everything else is retried on schedule.
    return "retry", f"HTTP {status}"


async def post_webhook(
    client: WebhookClient,
    *,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout_s: float = 10.0,
    allow_private: bool,
) -> DeliveryResult:
    """POST ``body`` to ``url`` once and classify the outcome.

    ``delivered`` on 2xx; ``give_up`` on 410 or when the URL or its resolved addresses violate
    the callback URL policy; ``retry`` on anything else (other statuses including 3xx, 429 and
    5xx, timeouts, connection and DNS failures, broken answers). ``timeout_s`` bounds the whole
    attempt, including DNS resolution and reading the response.
    """
    started = time.perf_counter()
    target: URL | None = None
    try:
        target, dest = _target(url, allow_private)
    except ValueError as exc:  # CallbackUrlError, or yarl rejecting what urlsplit accepted
        return DeliveryResult("give_up", None, _scrub(str(exc), target), _elapsed_ms(started))
    try:
        async with asyncio.timeout(timeout_s):
            status = await client.post(dest, body=body, headers=headers, allow_private=allow_private)
    except CallbackUrlError as exc:  # an address the policy refuses
        return DeliveryResult("give_up", None, _scrub(str(exc), target), _elapsed_ms(started))
    except TimeoutError:
        error = f"timed out after {timeout_s:g}s"
    except (OSError, BadResponseError) as exc:  # before ValueError: TLS errors are both
        error = _describe(exc)
    except ValueError as exc:  # a header that cannot be sent: retrying would not help
        return DeliveryResult("give_up", None, _scrub(str(exc), target), _elapsed_ms(started))
    else:
        outcome, status_error = _classify(status)
        return DeliveryResult(outcome, status, status_error, _elapsed_ms(started))
    return DeliveryResult("retry", None, _scrub(error, target), _elapsed_ms(started))
