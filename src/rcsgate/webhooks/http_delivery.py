"""One webhook delivery attempt over HTTP, classified for the retry scheduler.

The function never raises for anything the receiver or the network does: every outcome is a
:class:`DeliveryResult`, so one misbehaving customer endpoint cannot crash a dispatch worker.
Secrets and request headers never appear in results, because results are persisted and shown
to customers in delivery logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDict
from yarl import URL

from rcsgate import __version__
from rcsgate.webhooks.url_policy import (
    CallbackUrlError,
    address_problem,
    check_callback_url,
    resolve_and_check,
)

__all__ = ["MAX_RESPONSE_BYTES", "DeliveryResult", "Outcome", "make_session", "post_webhook"]

Outcome = Literal["delivered", "retry", "give_up"]

# Receivers' answers are never used; reading a little lets keep-alive work for well-behaved
# receivers while capping what a hostile one can make us buffer.
MAX_RESPONSE_BYTES = 64 * 1024
_MAX_ERROR_CHARS = 500
_USER_AGENT = f"rcsgate-webhooks/{__version__}"

# Policy in force for the request currently being made in this task. The session's resolver
# reads it so that the addresses aiohttp really connects to are checked, not only the ones
# resolve_and_check saw a moment earlier (a rebinding DNS server can answer differently each
# time). None means "not inside post_webhook": the resolver then behaves like aiohttp's own.
_ALLOW_PRIVATE: ContextVar[bool | None] = ContextVar("rcsgate_webhook_allow_private", default=None)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Outcome
    status_code: int | None
    error: str | None
    duration_ms: float


class _RefusedAddressError(OSError):
    """Raised by the resolver; an OSError because that is what aiohttp expects resolvers to raise."""


class _GuardedResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner: AbstractResolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if _ALLOW_PRIVATE.get() is False:
            for result in results:
                try:
                    problem = address_problem(ipaddress.ip_address(result["host"]))
                except ValueError:
                    problem = "unparseable"
                if problem is not None:
                    raise _RefusedAddressError(
                        f"callback URL host {host!r} resolves to {result['host']}, a {problem} address; "
                        "webhooks are only sent to public addresses"
                    )
        return results

    async def close(self) -> None:
        await self._inner.close()


def make_session(*, limit: int = 100) -> aiohttp.ClientSession:
    """A session tuned for webhook delivery; must be created inside the running event loop.

    Connection-pool waiting counts toward ``post_webhook``'s ``timeout_s``, so callers should
    not run more concurrent deliveries than ``limit``.
    """
    connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=60, resolver=_GuardedResolver())
    return aiohttp.ClientSession(
        connector=connector,
        # Proxies from the environment would connect on our behalf and bypass the address checks.
        trust_env=False,
        # One session serves every customer; cookies set by one receiver must not persist.
        cookie_jar=aiohttp.DummyCookieJar(),
        # The body is discarded, so decompressing it would only be a zip-bomb risk.
        auto_decompress=False,
    )


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _scrub(text: str, target: URL | None) -> str:
    # aiohttp error messages can echo the URL, which may carry basic-auth credentials.
    if target is not None and target.password:
        text = text.replace(target.password, "***")
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


async def _drain(response: aiohttp.ClientResponse) -> None:
    remaining = MAX_RESPONSE_BYTES
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            return
        remaining -= len(chunk)
    if not response.content.at_eof():
        # Oversized answer: drop the connection rather than pool one with unread bytes.
        response.close()


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
    session: aiohttp.ClientSession,
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
    5xx, timeouts, connection and DNS failures). ``timeout_s`` bounds the whole attempt,
    including DNS resolution and reading the response.
    """
    started = time.perf_counter()
    target: URL | None = None
    try:
        check_callback_url(url, allow_private=allow_private)
        target = URL(url)
        host, port = target.raw_host, target.port
        if host is None or port is None:
            raise CallbackUrlError("callback URL has no host")
    except ValueError as exc:  # CallbackUrlError, or yarl rejecting what urlsplit accepted
        return DeliveryResult("give_up", None, _scrub(str(exc), target), _elapsed_ms(started))

    request_headers = CIMultiDict(headers)
    request_headers.setdefault("user-agent", _USER_AGENT)
    status: int | None = None
    error = "no response"
    token = _ALLOW_PRIVATE.set(allow_private)
    try:
        async with asyncio.timeout(timeout_s):
            await resolve_and_check(host, port, allow_private=allow_private)
            async with session.post(
                target,
                data=body,
                headers=request_headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                status = response.status
                # The status line already carries the receiver's verdict; a broken body doesn't matter.
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    await _drain(response)
    except CallbackUrlError as exc:
        return DeliveryResult("give_up", None, _scrub(str(exc), target), _elapsed_ms(started))
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, _RefusedAddressError):
            return DeliveryResult("give_up", None, _scrub(str(exc.os_error), target), _elapsed_ms(started))
        error = _describe(exc)
    except TimeoutError:
        # Checked before ClientError: aiohttp's timeout errors subclass both.
        error = f"timed out after {timeout_s:g}s"
    except (aiohttp.ClientError, OSError) as exc:
        error = _describe(exc)
    finally:
        _ALLOW_PRIVATE.reset(token)

    if status is not None:
        # A timeout or error while draining the body does not undo the status we received.
        outcome, status_error = _classify(status)
        return DeliveryResult(outcome, status, status_error, _elapsed_ms(started))
    return DeliveryResult("retry", None, _scrub(error, target), _elapsed_ms(started))
