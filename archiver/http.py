"""HTTP for one vendor: timeouts, retries, error mapping, and where its token may go.

A :class:`VendorClient` sends its vendor's credentials only to that vendor's own API
origin (and hosts the operator trusts explicitly). Redirects are followed by hand so the
decision is made again for every hop: a redirect that leaves the origin loses the token.

Status mapping (one place, so every source behaves alike):

* 2xx: success; 204 on a download means "not ready yet" (:class:`NotReady`);
* 429 and 5xx, timeouts, resets, truncated bodies: :class:`VendorUnavailable` (retried);
* other 4xx: :class:`VendorError` (not retried);
* a body that is not JSON at all (an HTML proxy page, a cut-off document):
  :class:`UnreadableVendorResponse` (retried);
* JSON that does not have the documented shape: the source raises :class:`BadVendorResponse`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from archiver.errors import (
    IncompleteDownload,
    NotReady,
    UnreadableVendorResponse,
    UnsafeArtifactUrl,
    VendorError,
    VendorUnavailable,
)
from archiver.log import redact
from archiver.model import strip_query
from archiver.observe import NO_OBSERVER, Observer
from archiver.pacing import RateLimitPacer, retry_after_seconds
from archiver.retry import RetryPolicy, call_with_retries
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.urlpolicy import check_artifact_url

MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ERROR_BODY_LIMIT = 4096
DETAIL_LIMIT = 300  # characters of a vendor's error message kept in ours

AuthHeaders = Callable[[], Mapping[str, str]]


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    return (parts.scheme, (parts.hostname or "").lower(), parts.port or default_port)


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What a vendor's error body says: its words, a reference to quote, a wait hint."""

    detail: str = ""
    reference_id: str | None = None
    retry_after: float | None = None

    def describe(self) -> str:
        if self.reference_id:
            return f"{self.detail} (reference_id {self.reference_id})".strip()
        return self.detail


def parse_error_body(body: bytes) -> ErrorBody:
    """``userMessage`` (Perfecto), ``message``/``reference_id``/``retry_after`` (DevRev)..."""
    text = body[:ERROR_BODY_LIMIT].decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return ErrorBody(detail=" ".join(text.split())[:200])
    candidates = parsed if isinstance(parsed, list) else [parsed]
    for item in candidates:
        if not isinstance(item, dict):
            continue
        detail = next(
            (
                str(item[key])[:DETAIL_LIMIT]
                for key in ("userMessage", "message", "error", "detail")
                if isinstance(item.get(key), str)
            ),
            "",
        )
        if not detail and isinstance(item.get("title"), str):
            detail = _problem_details(item)
        reference = item.get("reference_id")
        wait = item.get("retry_after")
        return ErrorBody(
            detail=detail,
            reference_id=str(reference) if isinstance(reference, str | int) else None,
            retry_after=float(wait) if isinstance(wait, int | float) and wait >= 0 else None,
        )
    return ErrorBody(detail=" ".join(text.split())[:200])


def _problem_details(problem: Mapping[str, Any]) -> str:
    """An RFC 9457 problem (ASP.NET Core's validation answer): its ``title`` and each
    ``errors`` entry, ``"One or more validation errors occurred.: SessionCount: The field
    SessionCount must be between 0 and 1000."``, cut at ``DETAIL_LIMIT`` characters."""
    parts = [" ".join(str(problem["title"]).split())]
    errors = problem.get("errors")
    if isinstance(errors, Mapping):
        for field, messages in errors.items():
            texts = messages if isinstance(messages, list) else [messages]
            said = " ".join(" ".join(str(text).split()) for text in texts)
            parts.append(f"{field}: {said}".strip())
    text = ": ".join(part for part in parts if part)
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 3] + "..."


def _larger(first: float | None, second: float | None) -> float | None:
    known = [value for value in (first, second) if value is not None]
    return max(known) if known else None


@dataclass(slots=True)
class Download:
    """An open artifact response. ``chunks()`` checks the body against Content-Length."""

    url: str
    response: aiohttp.ClientResponse
    chunk_size: int
    vendor: str
    max_size: int = 0

    @property
    def content_type(self) -> str | None:
        value = self.response.headers.get("Content-Type")
        return value.split(";")[0].strip() if value else None

    @property
    def expected_size(self) -> int | None:
        # With a Content-Encoding, Content-Length counts the encoded bytes, not ours.
        if self.response.headers.get("Content-Encoding", "identity") != "identity":
            return None
        return self.response.content_length

    async def chunks(self) -> AsyncIterator[tuple[bytes, ...]]:
        """Yield the body in chunks of about ``chunk_size`` bytes, each a tuple of the pieces
        it arrived in: joining them would copy every byte on the event loop, and a store
        writes a chunk's pieces in one system call anyway."""
        received = 0
        pending: list[bytes] = []
        pending_size = 0
        self._check_size(self.expected_size or 0)
        try:
            # iter_chunks hands over each piece the connection received, without joining.
            async for piece, _ in self.response.content.iter_chunks():
                if not piece:
                    continue
                received += len(piece)
                self._check_size(received)
                pending.append(piece)
                pending_size += len(piece)
                if pending_size >= self.chunk_size:
                    yield tuple(pending)
                    pending, pending_size = [], 0
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IncompleteDownload(
                f"{self.vendor}: download of {strip_query(self.url)} broke off after "
                f"{received} bytes ({type(exc).__name__})"
            ) from exc
        expected = self.expected_size
        if expected is not None and received != expected:
            raise IncompleteDownload(
                f"{self.vendor}: download of {strip_query(self.url)} ended after {received} "
                f"of {expected} bytes"
            )
        if pending:
            yield tuple(pending)

    def _check_size(self, size: int) -> None:
        if self.max_size and size > self.max_size:
            raise UnsafeArtifactUrl(
                f"{self.vendor}: {strip_query(self.url)} is larger than http.max_artifact_mib "
                f"({self.max_size} bytes); not stored"
            )


class VendorClient:
    """One vendor's HTTP client. Its ``repr`` shows no credentials."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        vendor: str,
        base_url: str,
        auth_headers: AuthHeaders,
        settings: HttpSettings,
        trusted_hosts: tuple[str, ...] = (),
        label: str | None = None,
        requests_per_second: float | None = None,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        # Set once the app knows who watches; requests and retries are reported to it.
        self.observer: Observer = NO_OBSERVER
        # The metrics' vendor label: the source's name (the vendor's, in lower case).
        self.label = label or vendor.lower()
        self._vendor_label = self.label
        self._session = session
        self._auth_headers = auth_headers
        self._settings = settings
        self._origin = origin_of(self.base_url)
        self._trusted_hosts = frozenset(host.lower() for host in trusted_hosts)
        # Its budget is this process's unless the app shares one among replicas.
        self.pacer = RateLimitPacer(vendor=self.label, requests_per_second=requests_per_second)
        self._artifact_hosts = frozenset(host.lower() for host in settings.artifact_hosts)
        self.retry_policy = RetryPolicy(
            attempts=settings.attempts,
            backoff_initial=settings.backoff_initial,
            backoff_max=settings.backoff_max,
            on_retry=lambda: self.observer.vendor_retry(self._vendor_label),
        )
        self._api_timeout = aiohttp.ClientTimeout(
            total=settings.api_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        # No total cap for downloads: a multi-GiB video may take hours, and that is fine
        # as long as bytes keep arriving (sock_read).
        self._download_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
        )

    @classmethod
    def for_source(
        cls,
        http: aiohttp.ClientSession,
        *,
        vendor: str,
        source: SourceSettings,
        auth_headers: AuthHeaders,
        settings: HttpSettings,
    ) -> VendorClient:
        """The client a source's settings describe (its origin and trusted hosts)."""
        return cls(
            http,
            vendor=vendor,
            base_url=source.base_url,
            auth_headers=auth_headers,
            settings=settings,
            trusted_hosts=source.trusted_hosts,
            requests_per_second=source.requests_per_second,
        )

    def __repr__(self) -> str:
        return f"VendorClient(vendor={self.vendor!r}, base_url={self.base_url!r})"

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

    def may_authenticate(self, url: str) -> bool:
        scheme, host, port = origin_of(url)
        if (scheme, host, port) == self._origin:
            return True
        return scheme == "https" and host in self._trusted_hosts

    async def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        document, _raw = await self.get_document(path, params=params)
        return document

    async def get_document(
        self, path: str, *, params: Mapping[str, str] | None = None
    ) -> tuple[Any, bytes]:
        """The parsed JSON and the exact bytes the vendor sent (kept as evidence)."""
        return await self._json_with_retries("GET", path, params=params, body=None)

    async def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        document, _raw = await self.post_document(path, body)
        return document

    async def post_document(self, path: str, body: Mapping[str, Any]) -> tuple[Any, bytes]:
        return await self._json_with_retries("POST", path, params=None, body=body)

    async def _json_with_retries(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
    ) -> tuple[Any, bytes]:
        url = self.url(path)
        return await call_with_retries(
            self.retry_policy,
            lambda: self._json_once(method, url, params=params, body=body),
        )

    async def _json_once(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
    ) -> tuple[Any, bytes]:
        response = await self._send(method, url, params=params, body=body, api=True)
        async with response:
            await self._raise_for_status(response)
            if response.status == 204:
                raise NotReady(f"{self.vendor}: {strip_query(url)} has no content yet (HTTP 204)")
            try:
                raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self._unavailable(url, exc) from exc
        try:
            return json.loads(raw), raw
        except ValueError as exc:
            kind = response.headers.get("Content-Type", "no content type")
            raise UnreadableVendorResponse(
                f"{self.vendor}: {method} {strip_query(url)} answered HTTP {response.status} "
                f"with a body that is not JSON ({kind})"
            ) from exc

    @asynccontextmanager
    async def download(self, url: str) -> AsyncIterator[Download]:
        """Open an artifact response (one attempt; the engine retries the whole write)."""
        self._check_artifact_url(url)
        response = await self._send("GET", url, params=None, body=None, api=False)
        async with response:
            await self._raise_for_status(response)
            if response.status == 204:
                raise NotReady(f"{self.vendor}: {strip_query(url)} is not ready yet (HTTP 204)")
            yield Download(
                url=url,
                response=response,
                chunk_size=self._settings.chunk_size,
                vendor=self.vendor,
                max_size=self._settings.max_artifact_bytes,
            )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        api: bool,
    ) -> aiohttp.ClientResponse:
        timeout = self._api_timeout if api else self._download_timeout
        headers = {"Accept": "application/json"} if api else {"Accept-Encoding": "identity"}
        for _hop in range(MAX_REDIRECTS + 1):
            hop_headers = dict(headers)
            own_origin = self.may_authenticate(url)
            if own_origin:
                hop_headers.update(self._auth_headers())
                await self.pacer.wait_turn()
            try:
                response = await self._session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    headers=hop_headers,
                    allow_redirects=False,
                    timeout=timeout,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.observer.vendor_request(self._vendor_label, status=None)
                raise self._unavailable(url, exc) from exc
            self.observer.vendor_request(self._vendor_label, status=response.status)
            if own_origin:
                await self.pacer.learn(response.headers, response.status)
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                return response
            response.release()
            url = urljoin(str(response.url), location)
            if not api:
                self._check_artifact_url(url)
            params = None
            if response.status == 303:
                method, body = "GET", None
        raise VendorError(
            f"{self.vendor}: more than {MAX_REDIRECTS} redirects from {strip_query(url)}",
            vendor=self.vendor,
        )

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        status = response.status
        if status < 400:
            return
        try:
            error = parse_error_body(await response.content.read(ERROR_BODY_LIMIT))
        except (aiohttp.ClientError, TimeoutError):
            error = ErrorBody()
        detail = redact(error.describe())
        where = f"{response.method} {strip_query(str(response.url))}"
        message = f"{self.vendor} answered HTTP {status} for {where}" + (
            f": {detail}" if detail else ""
        )
        if status == 429 or status >= 500:
            raise VendorUnavailable(
                message,
                vendor=self.vendor,
                status=status,
                # DevRev sends both a header and a body field: the longer wait wins.
                retry_after=_larger(
                    retry_after_seconds(response.headers.get("Retry-After")), error.retry_after
                ),
            )
        raise VendorError(message, vendor=self.vendor, status=status)

    def _check_artifact_url(self, url: str) -> None:
        # The vendor's own API origin is trusted even with an allow-list of artifact hosts.
        hosts = self._artifact_hosts | {self._origin[1]} if self._artifact_hosts else frozenset()
        check_artifact_url(url, allowed_hosts=hosts)

    def _unavailable(self, url: str, exc: BaseException) -> VendorUnavailable:
        reason = "timed out" if isinstance(exc, TimeoutError) else redact(str(exc))
        return VendorUnavailable(
            f"{self.vendor}: request to {strip_query(url)} failed: {reason or type(exc).__name__}",
            vendor=self.vendor,
        )


def basic(username: str, key: Secret) -> AuthHeaders:
    """HTTP basic auth: ``username`` and ``key`` (UTF-8), revealed only when a request is sent."""

    def headers() -> Mapping[str, str]:
        pair = f"{username}:{key.reveal()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    return headers


def bearer(token: Secret) -> AuthHeaders:
    return lambda: {"Authorization": f"Bearer {token.reveal()}"}


def header(name: str, token: Secret) -> AuthHeaders:
    return lambda: {name: token.reveal()}
