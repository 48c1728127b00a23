"""Recorded vendor JSON (tests/fixtures/vendor_json/) served by a local HTTP server.

The server notes every request (method, path, query, headers, JSON body) and answers 401
to any without the expected credentials, so a source test checks both what the source made
of the vendor's answers and what it asked for. Recorded files are served byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vendor_json"


def recorded_bytes(vendor: str, name: str) -> bytes:
    """One recorded answer exactly as stored."""
    return (FIXTURES / vendor / name).read_bytes()


def recorded(vendor: str, name: str) -> Any:
    """One recorded answer, parsed."""
    return json.loads(recorded_bytes(vendor, name))


def has_recording(vendor: str, name: str) -> bool:
    return (FIXTURES / vendor / name).is_file()


def reply(vendor: str, name: str, *, status: int = 200) -> web.Response:
    """The recorded answer as the vendor sent it."""
    return web.Response(
        body=recorded_bytes(vendor, name), status=status, content_type="application/json"
    )


def reply_json(document: Any, *, status: int = 200) -> web.Response:
    """An answer built in the test (a recorded one with a field changed, a broken one)."""
    return web.json_response(document, status=status)


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any


Answer = Callable[[Seen], web.Response]


@dataclass
class Replay:
    url: str
    requests: list[Seen] = field(default_factory=list)

    def to(self, path: str) -> list[Seen]:
        """The requests made to ``path``, in order."""
        return [seen for seen in self.requests if seen.path == path]


@asynccontextmanager
async def replay(answer: Answer, *, auth: tuple[str, str]) -> AsyncIterator[Replay]:
    """Serve ``answer`` on loopback; ``auth`` is the header (name, value) every call needs."""
    requests: list[Seen] = []
    header_name, header_value = auth

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        seen = Seen(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=request.headers.copy(),
            body=json.loads(raw) if raw else None,
        )
        requests.append(seen)
        if request.headers.get(header_name) != header_value:
            return web.Response(status=401)
        return answer(seen)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Replay(url=str(server.make_url("/")).rstrip("/"), requests=requests)
    finally:
        await server.close()
