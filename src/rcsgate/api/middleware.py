"""Request id, access log, body-size limit and the checks every request passes before a route reads it
(header count, NUL in the query string), as one plain ASGI middleware (cheaper than BaseHTTPMiddleware).

The size of a request's head is capped earlier, by the HTTP server itself (``rcsgate.api.http_server``):
by the time a request gets here its headers have been read whole."""

from __future__ import annotations

import json
import os
import random
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rcsgate.logging_setup import get_logger

from .errors import INVALID, error_body
from .http_server import HEAD_TOO_LARGE, MAX_HEADERS
from .rcs_requests import NUL_CHARACTER, format_errors

log = get_logger("rcsgate.access")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Request ids tell log lines apart; they are not secrets. A generator seeded once from the OS, not a
# getrandom() system call per request (secrets.token_hex: ~2 % of the API's CPU under Google's
# event pushes, py-spy 2026-12-05). Same form as before: 16 hex digits.
_request_ids = random.Random()
os.register_at_fork(after_in_child=_request_ids.seed)  # a forked worker must not repeat its parent's


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _CLIENT_ID.match(offered) else f"{_request_ids.getrandbits(64):016x}"
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if len(scope["headers"]) > MAX_HEADERS:
                # Also capped by the server (http_server); this holds under any server.
                await _answer(send_with_id, 431, error_body(HEAD_TOO_LARGE))
                return
            if b"%00" in scope["query_string"]:
                faults = _nul_parameters(scope["query_string"])
                if faults:
                    await _answer(send_with_id, 422, error_body(INVALID, faults))
                    return
            declared = headers.get(b"content-length")
            if declared is not None:
                # The server (h11/httptools) holds the client to its declared length.
                if declared.isdigit() and int(declared) > self.max_body_bytes:
                    await self._reject_too_large(send_with_id)
                    return
                await self.app(scope, receive, send_with_id)
                return
            buffered = await self._read_limited(receive)
            if buffered is None:
                await self._reject_too_large(send_with_id)
                return
            await self.app(scope, buffered, send_with_id)
        finally:
            state: dict[str, Any] = scope.get("state", {})
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                account_id=state.get("account_id"),
            )
            structlog.contextvars.unbind_contextvars("request_id")

    async def _read_limited(self, receive: Receive) -> Receive | None:
        """Read a body of unknown length (chunked) up to the limit; None when it is longer."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    async def _reject_too_large(send: Send) -> None:
        await _answer(send, 413, error_body("Request body too large."))


def _nul_parameters(query_string: bytes) -> dict[str, list[str]]:
    """The 422 errors for query parameters whose name or value holds a NUL (``%00``). PostgreSQL refuses
    a NUL in text (it was a 500 wherever a parameter reaches a query), so no parameter may carry one, on
    any route or engine, as no body string may (api.bodies)."""
    faults = [
        {"type": "rcsgate", "loc": (name.replace("\x00", "\\u0000"),), "msg": NUL_CHARACTER}
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
        if "\x00" in name or "\x00" in value
    ]
    return format_errors(faults)


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
