"""A raw local HTTP/1.1 server for client tests: each request is answered with exactly the bytes a
test gives, so malformed, chunked, slow or hung-up answers can be produced at will."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

# The request's bytes -> what to send back (None: hang up; b"": never answer).
Answer = Callable[[bytes], bytes | None]


@asynccontextmanager
async def raw_server(
    answer: Answer, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[dict[str, list]]:
    """A server answering each request with ``answer(request)``; records requests and connections
    (``seen["port"][0]`` is its port)."""
    seen: dict[str, list] = {"requests": [], "connections": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"].append(writer.get_extra_info("peername"))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                seen["requests"].append(request)
                reply = answer(request)
                if reply is None:
                    break
                if not reply:
                    await asyncio.sleep(10)  # the client's timeout is what a test watches
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    seen["port"] = [server.sockets[0].getsockname()[1]]
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()
