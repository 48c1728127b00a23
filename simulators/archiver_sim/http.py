"""The HTTP answers every simulator builds the same way: JSON bodies, streamed files, S3 errors.

Vendor-specific error bodies stay in each simulator; these helpers only fix how a body goes
on the wire (``ensure_ascii=False`` JSON, a streamed body with its Content-Length, the XML an
S3-compatible files origin answers with).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from typing import Any, Protocol

from aiohttp import web

__all__ = ["json_response", "s3_error", "send_file"]

_dumps = functools.partial(json.dumps, ensure_ascii=False)


class Sendable(Protocol):
    """A file a simulator serves: its size, its type and its bytes, piece by piece."""

    @property
    def size(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    def chunks(self) -> Iterator[bytes]: ...


def json_response(body: Any, status: int = 200) -> web.Response:
    """``body`` as JSON, non-ASCII characters as they are (not ``\\u`` escapes)."""
    return web.json_response(body, status=status, dumps=_dumps)


async def send_file(request: web.Request, file: Sendable) -> web.StreamResponse:
    """Stream ``file`` chunk by chunk, with its Content-Length: a multi-GiB video never sits
    in memory. A HEAD request gets the headers only."""
    response = web.StreamResponse()
    response.content_type = file.content_type
    response.content_length = file.size
    transport = request.transport  # aiohttp forgets it when the server force-closes
    await response.prepare(request)
    if request.method != "HEAD":
        try:
            for chunk in file.chunks():
                await response.write(chunk)
        except asyncio.CancelledError:
            # The server is stopping under a client that stopped reading: a plain close
            # would wait for the send buffer to drain, and leak the socket.
            if transport is not None:
                transport.abort()
            raise
    await response.write_eof()
    return response


def s3_error(status: int, code: str) -> web.Response:
    """An S3-style XML error, as a signed-URL files origin answers."""
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code></Error>'
    return web.Response(status=status, text=body, content_type="application/xml")
