"""Limits on request heads (request line and headers), enforced by the HTTP server before anything reads them.

uvicorn's httptools protocol (what ``uvicorn[standard]`` runs) has no limit at all: a single 64 MB
header was read whole, by anyone, no credentials needed (httptools even grows the value by repeated
concatenation). ``BoundedHttpToolsProtocol`` counts the bytes of a head as they arrive and answers
``431 Request Header Fields Too Large`` (the JSON error body, then closes the connection) as soon as
a head passes ``MAX_HEAD_BYTES`` or holds more than ``MAX_HEADERS`` headers, having buffered at most
two reads (256 KB each) more than that. (uvicorn's pure-Python h11 protocol has a limit of its own,
``h11_max_incomplete_event_size``, set to the same size should it be chosen instead: it answers 400.)

Start uvicorn with ``server_options()``: ``uvicorn.run(app, ..., **server_options())``.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rcsgate.logging_setup import get_logger

from .errors import error_body

log = get_logger("rcsgate.api")

# The request line and the headers of one request, in bytes (names and values, without separators).
# The longest the API asks for: a list query of 1000 ids of 19 digits (GET /api/contacts?groups[]=...),
# about 33 KB; a bearer token is under 300 bytes.
MAX_HEAD_BYTES: Final = 64 * 1024
# Real clients send about ten; Apache's LimitRequestFields is 100 too.
MAX_HEADERS: Final = 100
HEAD_TOO_LARGE: Final = "Request header fields too large."


def server_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that cap request heads."""
    return {"http": BoundedHttpToolsProtocol, "h11_max_incomplete_event_size": MAX_HEAD_BYTES}


def _head_too_large_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = json.dumps(error_body(HEAD_TOO_LARGE)).encode()
    status = http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a connection whose head was refused."""


_QUIET = logging.getLogger("rcsgate.api.http_server.refused")
_QUIET.disabled = True


class _OneWritePerTurn:
    """A connection's transport whose writes of one turn of the event loop go out in one system call.

    uvicorn writes a response's head and its body apart, two ``send`` calls on loopback or a LAN,
    each a system call that, on loopback, also runs the receiver's side of TCP. Held to the end of
    the turn they are written together (API CPU per RBM push answered: see docs/PERFORMANCE.md).
    Closing writes what is held first; aborting drops it, as the transport's own abort does."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data)

    def _flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on each request's head (see the module docstring).

    While a head arrives, its bytes are counted as they are read; once the parser reports it complete,
    it is measured exactly (URL, header names and values) and its headers counted, before uvicorn
    builds the request. The count is an upper bound: the read in which a request ends may hold the
    start of the next head too, so the next head is charged with the whole read (``_unsure`` of it),
    and refused while incomplete only once it is too large for certain."""

    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # from the end of a request (or the connection's start) to the end of a head
        self._head_bytes = 0  # bytes the current head may have, at most
        self._unsure = 0  # of which this many may be the previous request's
        self._read = 0  # the length of the current read
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _OneWritePerTurn(self.transport, self.loop)  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._read = len(data)
        if self._in_head:
            self._head_bytes += self._read
        super().data_received(data)
        if self._in_head and self._head_bytes - self._unsure > self.max_head_bytes and not self._refused:
            self._refuse()

    def on_headers_complete(self) -> None:
        if self._head_bytes > self.max_head_bytes or len(self.headers) > self.max_headers:
            size = len(self.url)
            for name, value in self.headers:  # (a loop costs half of sum() over a generator)
                size += len(name) + len(value)
            if size > self.max_head_bytes or len(self.headers) > self.max_headers:
                self._refuse()
                raise _HeadRefused  # stops the parser; uvicorn then calls send_400_response
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # The rest of this read may already be the next head.
        self._in_head = True
        self._head_bytes = self._unsure = self._read
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # refused: the 431 is the answer
            super().send_400_response(msg)

    def _refuse(self) -> None:
        self._refused = True
        log.warning(
            "request_head_too_large",
            client=self.client[0] if self.client else None,
            head_bytes=max(self._head_bytes, len(getattr(self, "url", b""))),
            headers=len(self.headers or ()),
        )
        # uvicorn would log the parse error that stops the parser as an invalid request.
        self.logger = _QUIET
        if not self.transport.is_closing():
            self.transport.write(_head_too_large_response(self.server_state.default_headers))
            self.transport.close()
