"""What every simulator's HTTP does the same way: JSON bodies, streamed files, S3 errors,
basic-auth checks and integer query parameters.

Vendor-specific error bodies stay in each simulator; these helpers only fix how a body goes
on the wire (``ensure_ascii=False`` JSON, a streamed body with its Content-Length, the XML an
S3-compatible files origin answers with) and how a request is read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
from collections.abc import Iterator
from typing import Any, Protocol

from aiohttp import web

__all__ = [
    "BadQuery",
    "basic_auth_matches",
    "int_query",
    "json_response",
    "s3_error",
    "send_file",
]

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


def basic_auth_matches(header: str, username: str, password: str) -> bool:
    """Whether an ``Authorization`` header is HTTP basic auth with exactly these credentials."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(decoded, f"{username}:{password}".encode())


class BadQuery(Exception):
    """A query parameter the API refuses; the message names it. Each simulator answers it
    with its vendor's status and error body."""


def int_query(request: web.Request, name: str, default: int, *, minimum: int = 0) -> int:
    """The integer query parameter ``name`` (``default`` when absent or empty)."""
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadQuery(f"{name} must be an integer") from None
    if value < minimum:
        raise BadQuery(f"{name} must be {minimum} or more")
    return value
