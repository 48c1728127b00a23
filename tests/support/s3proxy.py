"""A fault-injecting proxy in front of the test S3 API server, working on raw HTTP bytes.

Request bodies (``aws-chunked`` with trailing checksums, ``Transfer-Encoding: chunked``,
plain ``Content-Length``) are passed through byte for byte, so SigV4 signatures and
checksums stay valid. Only the hop-by-hop headers ``Expect`` (the proxy answers
``100 Continue`` itself; botocore never signs it) and ``Connection`` are touched.

Seeded like the vendor simulators' fault mode: PutObject, CreateMultipartUpload, UploadPart
and CompleteMultipartUpload requests get, at ``rate``, a 500 ``InternalError``, a 503
``SlowDown``, a connection closed before the request reaches S3 (``drop_before``), or one
closed after S3 did the work but before the answer got back (``drop_after``);
``operations`` and ``kinds`` narrow that down (the store's start-up probe, under
``.archiver/``, is never faulted). Whatever the fault plan, a request whose
plain body does not match its ``x-amz-checksum-crc32`` or ``-sha256`` header is answered
``400 BadDigest``, as S3 does (the test server does not check them). No request
(method, path, part number) fails more than ``max_in_a_row`` times in a row. With
``cover_all`` every kind is injected on every operation before chance takes over, so a short
run is sure to have seen each one. With ``outlast_first`` the first PutObject's request fails
``max_in_a_row`` times in a row whatever chance says, so a run that sets ``max_in_a_row``
above the client's retry attempts is sure to see one fault outlast them. With ``corrupt``,
one byte in the middle of every plain body of those operations is flipped on its way
upstream, and the server alone judges it (the proxy checks no checksum of such a request).
To make moto (which checks no signature) behave like servers that ignore what they are
asked, ``strip`` drops request headers (``If-None-Match``, encryption or Object Lock ones),
and ``not_implemented`` answers 501 to those operations (s3rver and ListMultipartUploads).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

KINDS = ("500", "503", "drop_before", "drop_after")
OPERATIONS = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
_ERRORS = {
    "500": ("Internal Server Error", "InternalError", "We encountered an internal error."),
    "503": ("Slow Down", "SlowDown", "Please reduce your request rate."),
}
_MAX_HEAD = 64 * 1024


@dataclass
class _Message:
    start: str  # request or status line
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def head_bytes(self, *, drop: frozenset[str] = frozenset(), add: str = "") -> bytes:
        lines = [self.start]
        lines += [f"{key}: {value}" for key, value in self.headers if key.lower() not in drop]
        if add:
            lines.append(add)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def operation(method: str, target: str) -> str | None:
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    if method == "GET" and "uploads" in query:
        return "ListMultipartUploads"
    if method == "PUT" and parts.path.strip("/").count("/") >= 1:
        return "UploadPart" if "partNumber" in query else "PutObject"
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    return None


class S3FaultProxy:
    """``with S3FaultProxy(upstream, seed=...) as proxy:`` serves on ``proxy.url``."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int,
        rate: float = 0.3,
        max_in_a_row: int = 2,
        cover_all: bool = False,
        outlast_first: bool = False,
        operations: frozenset[str] = frozenset(OPERATIONS),
        kinds: tuple[str, ...] = KINDS,
        corrupt: frozenset[str] = frozenset(),
        strip: frozenset[str] = frozenset(),
        not_implemented: frozenset[str] = frozenset(),
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.seed = seed
        self.rate = rate
        self.max_in_a_row = max_in_a_row
        self.url = ""
        self.requests: Counter[str] = Counter()  # operation -> requests seen
        self.injected: Counter[tuple[str, str]] = Counter()  # (operation, kind)
        self.refused: Counter[str] = Counter()  # operation -> answered BadDigest
        self.corrupted: Counter[str] = Counter()  # operation -> bodies changed on the way
        self._corrupt = corrupt
        self._strip = frozenset(name.lower() for name in strip)
        self._not_implemented = not_implemented
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self._streaks: Counter[str] = Counter()
        self._outlast_first = outlast_first
        self._operations = operations
        self._kinds = kinds
        self._doomed_key: str | None = None
        plan = random.Random(seed)
        self._pending = {
            op: plan.sample(KINDS, len(KINDS)) if cover_all else [] for op in OPERATIONS
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> S3FaultProxy:
        self._thread = threading.Thread(target=self._run, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError(f"S3 fault proxy did not start: {self._failure!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()

    # -- the fault plan -------------------------------------------------------------------

    def _decide(self, method: str, target: str, op: str) -> str | None:
        parts = urlsplit(target)
        part = parse_qs(parts.query).get("partNumber", [""])[0]
        key = f"{method} {parts.path}?{part}"
        with self._lock:
            self.requests[op] += 1
            if op not in self._operations:
                return None
            number = self._seen[key]
            self._seen[key] += 1
            if self._outlast_first and self._doomed_key is None and op == "PutObject":
                self._doomed_key = key
            if key == self._doomed_key and number < self.max_in_a_row:
                self._streaks[key] += 1
                self.injected[(op, "500")] += 1
                return "500"
            if self._streaks[key] >= self.max_in_a_row:
                self._streaks[key] = 0
                return None
            rng = random.Random(f"{self.seed}:{key}:{number}")
            if self._pending[op]:
                kind = self._pending[op].pop()
            elif rng.random() >= self.rate:
                self._streaks[key] = 0
                return None
            else:
                kind = rng.choice(self._kinds)
            self._streaks[key] += 1
            self.injected[(op, kind)] += 1
            return kind

    # -- one client connection, many requests ---------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the proxy is stopping; the connection just closes
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        request = await _read_head(reader)
        if request is None:
            return False
        method, target, _version = request.start.split(" ", 2)
        if (request.header("expect") or "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        body = await _read_body(reader, request, is_request=True)
        op = operation(method, target)
        if op in self._not_implemented:
            with self._lock:
                self.requests[op] += 1
            writer.write(_error_answer("501 Not Implemented", "NotImplemented", "not here"))
            await writer.drain()
            return True
        if self._strip:  # only for a server that checks no signature (moto)
            request.headers = [(k, v) for k, v in request.headers if k.lower() not in self._strip]
        if op in self._corrupt and body and not request.header("transfer-encoding"):
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]
            with self._lock:
                self.corrupted[op] += 1
        elif (wrong := _wrong_checksum(request, body)) is not None:
            self.refused[op or method] += 1
            writer.write(_error_answer("400 Bad Request", "BadDigest", f"{wrong} mismatch"))
            await writer.drain()
            return True
        # The store's start-up probe (under .archiver/) passes: faults land on evidence.
        kind = self._decide(method, target, op) if op and "/.archiver/" not in target else None
        if kind == "drop_before":
            _abort(writer)
            return False
        if kind in _ERRORS:
            reason, code, message = _ERRORS[kind]
            writer.write(_error_answer(f"{kind} {reason}", code, message))
            await writer.drain()
            return True
        head, payload = await self._forward(request, body, method)
        if kind == "drop_after":
            _abort(writer)
            return False
        writer.write(head + payload)
        await writer.drain()
        return (request.header("connection") or "").lower() != "close"

    async def _forward(self, request: _Message, body: bytes, method: str) -> tuple[bytes, bytes]:
        """One upstream connection per request: send it verbatim, read the whole answer."""
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        try:
            drop = frozenset({"expect", "connection"})
            up_writer.write(request.head_bytes(drop=drop, add="Connection: close") + body)
            await up_writer.drain()
            response = await _read_head(up_reader)
            if response is None:
                raise ConnectionError("S3 server closed the connection without an answer")
            status = int(response.start.split(" ", 2)[1])
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                payload = b""
            elif response.header("transfer-encoding") or response.header("content-length"):
                payload = await _read_body(up_reader, response, is_request=False)
            else:
                payload = await up_reader.read()
                response.headers.append(("Content-Length", str(len(payload))))
            head = response.head_bytes(drop=frozenset({"connection", "keep-alive"}))
            return head, payload
        finally:
            up_writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await up_writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> _Message | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    if len(raw) > _MAX_HEAD:
        raise ConnectionError("header block too large")
    lines = raw.decode("latin-1").split("\r\n")[:-2]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return _Message(lines[0], headers)


async def _read_body(reader: asyncio.StreamReader, message: _Message, *, is_request: bool) -> bytes:
    """The body's bytes exactly as framed on the wire (chunk sizes and trailers included)."""
    if "chunked" in (message.header("transfer-encoding") or "").lower():
        raw = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = await reader.readuntil(b"\r\n")
                    raw += line
                    if line == b"\r\n":
                        return bytes(raw)
            raw += await reader.readexactly(size + 2)
    length = message.header("content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return b"" if is_request else await reader.read()


def _wrong_checksum(request: _Message, body: bytes) -> str | None:
    """What S3 does and the test server does not: check a checksum header against a plain
    body. The name of the checksum that does not match, or None."""
    if request.header("transfer-encoding") or "aws-chunked" in (
        request.header("content-encoding") or ""
    ):
        return None  # framed bodies carry their checksums in trailers; S3 checks those
    digests: dict[str, Callable[[], bytes]] = {
        "x-amz-checksum-crc32": lambda: zlib.crc32(body).to_bytes(4, "big"),
        "x-amz-checksum-sha256": lambda: hashlib.sha256(body).digest(),
    }
    for name, digest in digests.items():
        sent = request.header(name)
        if sent is not None and sent != base64.b64encode(digest()).decode("ascii"):
            return name
    return None


def _error_answer(status: str, code: str, message: str) -> bytes:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>PROXY</RequestId></Error>"
    ).encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(xml)}\r\n\r\n".encode()
        + xml
    )


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if transport is not None:
        transport.abort()
