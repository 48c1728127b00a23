"""Fault mode for the simulators: seeded, bounded, the same for every vendor.

A :class:`FaultPlan` is installed on every origin of a simulator by the runner
(:func:`archiver_sim.runner.running`). Each request is one draw: with probability ``rate``
it gets one of the plan's ``kinds`` instead of the vendor's answer:

* ``"500"``, ``"502"``, ``"503"``: a server error (JSON, an HTML gateway page, plain text);
* ``"429"``: too many requests, with ``Retry-After: <retry_after>``;
* ``"reset"``: headers and part of a body, then the connection is aborted;
* ``"short"``: a body shorter than its ``Content-Length``, then a clean close;
* ``"stall"``: no answer for ``stall_seconds`` (longer than the client's read timeout);
* ``"html"``: an HTML error page (status 200 or 502) where JSON was asked for;
* ``"malformed"``: status 200, ``application/json``, and a body cut in the middle;
* ``"empty_page"``: handled by a vendor's listing handler (Perfecto): an empty page whose
  ``metadata.truncated`` still says more pages follow. Handlers ask :meth:`FaultPlan.claim`.

``html`` and ``malformed`` only hit requests that accept JSON (a downloaded file has no
format to break). Draws are deterministic: the n-th request with a given key (origin,
method, path, query) always gets the same fate for the same seed, whatever the order in
which concurrent requests arrive. No key fails more than ``max_in_a_row`` times in a row,
so a client that retries reaches every answer in the end.

``latency_seconds`` delays every request the plan applies to, faulty or not: a vendor far
away (a plan with ``rate=0`` adds the delay alone). ``requests_per_second`` is the vendor's
own limit, a token bucket holding one second's worth (as API gateways keep it): a request
that finds the bucket empty is answered 429 with ``Retry-After: <retry_after>``, whoever
sends it (noted as a ``"429"`` fault).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

GENERIC_KINDS = frozenset(
    {"500", "502", "503", "429", "reset", "short", "stall", "html", "malformed"}
)
HANDLER_KINDS = frozenset({"empty_page"})
ALL_KINDS = GENERIC_KINDS | HANDLER_KINDS
JSON_ONLY_KINDS = frozenset({"html", "malformed"})
# Bytes a cut body claims (Content-Length) and the part of them actually sent.
CUT_BODY_LENGTH = 64 * 1024
CUT_BODY_SENT = 4 * 1024

FAULT_PLAN: web.AppKey[FaultPlan] = web.AppKey("fault_plan")


@dataclass(frozen=True, slots=True)
class InjectedFault:
    origin: str
    method: str
    path: str
    kind: str


@dataclass(slots=True)
class _Draw:
    origin: str
    key: str
    rng: random.Random
    eligible: bool
    kind: str | None = None


@dataclass(kw_only=True)
class FaultPlan:
    """Which faults, how often, where. ``origins``/``paths`` empty: everywhere."""

    seed: int = 0
    rate: float = 0.3
    kinds: Collection[str] = ALL_KINDS
    origins: Collection[str] = ()
    paths: tuple[str, ...] = ()
    max_in_a_row: int = 2
    retry_after: float = 1.0
    stall_seconds: float = 3.0
    latency_seconds: float = 0.0
    requests_per_second: float = 0.0  # 0: no limit
    seen: int = field(default=0, init=False)
    """Requests the plan applied to, faulty or not."""
    first_seen_at: float | None = field(default=None, init=False)
    last_seen_at: float | None = field(default=None, init=False)
    """When the first and the last of them arrived (``time.monotonic()``)."""
    injected: list[InjectedFault] = field(default_factory=list, init=False, repr=False)
    _streaks: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _counts: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _open: dict[int, _Draw] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _tokens: float | None = field(default=None, init=False, repr=False)
    _filled_at: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - ALL_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
        if not 0.0 <= self.rate <= 1.0 or self.max_in_a_row < 0 or self.latency_seconds < 0:
            raise ValueError("rate must be within [0, 1], max_in_a_row and latency_seconds >= 0")
        self.kinds = frozenset(self.kinds)

    # -- for tests -----------------------------------------------------------------------

    def counts(self) -> Counter[str]:
        """How many faults of each kind were injected so far."""
        with self._lock:
            return Counter(fault.kind for fault in self.injected)

    # -- wiring ------------------------------------------------------------------------

    def install(self, origin: str, app: web.Application) -> None:
        """Inject faults into ``app`` (before it starts), as the origin named ``origin``."""
        app[FAULT_PLAN] = self
        app.middlewares.append(self.middleware(origin))

    def middleware(self, origin: str) -> Middleware:
        @web.middleware
        async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self._applies(origin, request.path):
                return await handler(request)
            with self._lock:
                self.seen += 1
                self.last_seen_at = time.monotonic()
                if self.first_seen_at is None:
                    self.first_seen_at = self.last_seen_at
            if self.latency_seconds:
                await asyncio.sleep(self.latency_seconds)
            if self._over_the_limit():
                self._note(origin, request, "429")
                return await _fault(request, "429", self)
            draw = self._draw(origin, request)
            if draw.kind is not None:
                self._note(origin, request, draw.kind)
                return await _fault(request, draw.kind, self)
            with self._lock:
                self._open[id(request)] = draw
            try:
                return await handler(request)
            finally:
                with self._lock:
                    del self._open[id(request)]
                    if draw.kind is None:
                        self._streaks[draw.key] = 0

        return inject

    def claim(self, request: web.Request, kind: str) -> bool:
        """A handler asks whether to serve its own fault ``kind`` for this request."""
        with self._lock:
            draw = self._open.get(id(request))
        if draw is None or kind not in self.kinds or not draw.eligible:
            return False
        if draw.kind is not None or draw.rng.random() >= self.rate:
            return False
        draw.kind = kind
        with self._lock:
            self._streaks[draw.key] = self._streaks.get(draw.key, 0) + 1
        self._note(draw.origin, request, kind)
        return True

    # -- internals ---------------------------------------------------------------------

    def _over_the_limit(self) -> bool:
        """Whether the bucket is empty now (if not, the request takes a token)."""
        if not self.requests_per_second:
            return False
        now = time.monotonic()
        with self._lock:
            capacity = self.requests_per_second
            if self._tokens is None:
                self._tokens = capacity
            self._tokens = min(capacity, self._tokens + (now - self._filled_at) * capacity)
            self._filled_at = now
            if self._tokens < 1:
                return True
            self._tokens -= 1
            return False

    def _applies(self, origin: str, path: str) -> bool:
        if path.startswith("/_sim/"):
            return False
        if self.origins and origin not in self.origins:
            return False
        return not self.paths or path.startswith(self.paths)

    def _draw(self, origin: str, request: web.Request) -> _Draw:
        query = "&".join(f"{name}={value}" for name, value in sorted(request.query.items()))
        key = f"{origin} {request.method} {request.path}?{query}"
        with self._lock:
            number = self._counts.get(key, 0)
            self._counts[key] = number + 1
            eligible = self._streaks.get(key, 0) < self.max_in_a_row
        rng = random.Random(f"{self.seed}:{key}:{number}")
        draw = _Draw(origin=origin, key=key, rng=rng, eligible=eligible)
        kinds = set(self.kinds) & GENERIC_KINDS
        if "application/json" not in request.headers.get("Accept", ""):
            kinds -= JSON_ONLY_KINDS
        if eligible and kinds and rng.random() < self.rate:
            draw.kind = rng.choice(sorted(kinds))
            with self._lock:
                self._streaks[key] = self._streaks.get(key, 0) + 1
        return draw

    def _note(self, origin: str, request: web.Request, kind: str) -> None:
        fault = InjectedFault(origin=origin, method=request.method, path=request.path, kind=kind)
        with self._lock:
            self.injected.append(fault)


async def _fault(request: web.Request, kind: str, plan: FaultPlan) -> web.StreamResponse:
    if kind == "500":
        return web.json_response({"message": "simulated internal error"}, status=500)
    if kind == "502":
        return web.Response(status=502, text=_html("502 Bad Gateway"), content_type="text/html")
    if kind == "503":
        return web.Response(status=503, text="Service Unavailable (simulated)")
    if kind == "429":
        return web.json_response(
            {"message": "too many requests (simulated)"},
            status=429,
            headers={"Retry-After": f"{plan.retry_after:g}"},
        )
    if kind == "html":
        status = 200 if random.Random(request.path).random() < 0.5 else 502
        return web.Response(status=status, text=_html("Proxy error"), content_type="text/html")
    if kind == "malformed":
        return web.Response(
            status=200, body=b'{"resources": [{"id": "cut', content_type="application/json"
        )
    if kind == "stall":
        await asyncio.sleep(plan.stall_seconds)
        return web.Response(status=503, text="stalled (simulated)")
    return await _cut_body(request, abort=kind == "reset")


async def _cut_body(request: web.Request, *, abort: bool) -> web.StreamResponse:
    """Promise ``CUT_BODY_LENGTH`` bytes, send a few, then drop the connection."""
    response = web.StreamResponse(status=200)
    response.content_type = "application/octet-stream"
    response.content_length = CUT_BODY_LENGTH
    transport = request.transport
    await response.prepare(request)
    await response.write(b"\0" * CUT_BODY_SENT)
    await asyncio.sleep(0.01)
    if transport is not None:
        if abort:
            transport.abort()
        else:
            transport.close()
    # aiohttp notices the closed transport and stops; nothing more can be sent.
    raise asyncio.CancelledError


def _html(title: str) -> str:
    head = f"<head><title>{title}</title></head>"
    return f"<!DOCTYPE html><html>{head}<body><h1>{title}</h1></body></html>"
