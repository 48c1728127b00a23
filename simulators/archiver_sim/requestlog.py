"""What a simulator's origins were asked: every request, kept so tests can inspect it.

Shared by every vendor simulator. ``/_sim/`` paths (the simulators' own helpers, not part
of any vendor API) are not recorded. JSON request bodies are kept parsed, so a test can see
what a client POSTed.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


@dataclass(frozen=True, slots=True, kw_only=True)
class SimRequest:
    """One request an origin received. Header names are lower-cased."""

    origin: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str] = field(repr=False)
    body: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def carries(self, secret: str) -> bool:
        """Whether ``secret`` appears in any header or query value."""
        return any(secret in value for value in (*self.headers.values(), *self.query.values()))

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "headers": dict(self.headers),
            "body": self.body,
        }


class RequestLog:
    """A bounded, thread-safe log (tests read it from another thread than the servers')."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[SimRequest] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def entries(self, origin: str | None = None) -> list[SimRequest]:
        with self._lock:
            return [entry for entry in self._entries if origin in (None, entry.origin)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def recorder(self, origin: str) -> Middleware:
        """Middleware recording every request to ``origin``."""

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not request.path.startswith("/_sim/"):
                entry = SimRequest(
                    origin=origin,
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers={name.lower(): value for name, value in request.headers.items()},
                    body=await _json_body(request),
                )
                with self._lock:
                    self._entries.append(entry)
            return await handler(request)

        return record

    async def serve(self, request: web.Request) -> web.Response:
        """``GET /_sim/requests``: the log as JSON."""
        return web.json_response([entry.to_json() for entry in self.entries()])


async def _json_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


class RequestLogged:
    """What every simulator offers its tests about the requests it received."""

    request_log: RequestLog

    def requests(self, origin: str | None = None) -> list[SimRequest]:
        return self.request_log.entries(origin)

    def clear_requests(self) -> None:
        self.request_log.clear()
