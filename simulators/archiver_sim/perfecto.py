"""A Perfecto Smart Reporting export API simulator, for ``archiver demo`` and the tests.

Two origins, as in real life: the **API origin** (``/export/api/v1/...``, token in the
``PERFECTO-AUTHORIZATION`` header) and an **artifact origin** standing in for signed
object-store URLs (``/files/...?X-Amz-Signature=...``, no token). Some artifacts are
"secure download URLs" on the API origin (they need the token), and some answer there
with a 302 to the artifact origin, so a client has to drop the token on the way.

The commands report links images two ways, as the document shows: ``screenshots`` and,
for visual checks, ``{"type": "IMAGE_KEY", "value": <url>}`` entries among a command's
``expectedData`` (the baseline, a secure download URL) and ``resultData`` (the captured
image, a signed URL). Beside them sit ``TEXT`` entries, some holding a link that is text,
not a file: it points at a path neither origin serves.

Everything derives from :class:`PerfectoSimConfig`: the same config gives the same ids,
URL paths and bytes (only ``startTime`` follows the clock, unless ``newest_start_ms`` is
set). Executions are built once, newest first, with their start times kept ascending
beside them for :mod:`bisect`, so a page costs the same with 10 or 100,000 executions.

Routes under ``/_sim/`` are not part of the vendor API: test helpers only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim import content
from archiver_sim.faults import FAULT_PLAN
from archiver_sim.http import json_response, s3_error, send_file
from archiver_sim.requestlog import RequestLog, RequestLogged

API_PREFIX = "/export/api/v1"
EXECUTIONS_PATH = f"{API_PREFIX}/test-executions"
PDF_PATH = f"{EXECUTIONS_PATH}/pdf"
ARTIFACTS_PATH = f"{API_PREFIX}/artifacts"
TOKEN_HEADERS = ("PERFECTO-AUTHORIZATION", "PERFECTO_AUTHORIZATION")
PROCESSING = "PROCESSING"
PROCESSING_COMPLETE = "PROCESSING_COMPLETE"
WINDOW_REFUSED = "Time period is not in supported range"
KIB = 1024

Delivery = Literal["signed", "secure", "redirect"]


@dataclass(frozen=True, slots=True, kw_only=True)
class UniformLayout:
    """Every execution links to the same files: for benchmarks that need exact counts."""

    videos: int = 1
    artifact_types: tuple[str, ...] = ()
    screenshots: int = 0


# With ``body_dir``, bodies up to this size are read into the answer instead of sent with sendfile.
SMALL_BODY_BYTES = 256 * KIB


@dataclass(frozen=True, slots=True, kw_only=True)
class PerfectoSimConfig:
    """The simulated tenant. Defaults suit a demo: a dozen executions, small files.

    ``unfinished``: the first K executions (newest first) stay PROCESSING until a test
    calls ``finish`` or ``finish_all``. ``latency_seconds`` delays every answer, as a vendor
    far away does. With ``body_dir`` the bodies are written to files once and sent with
    ``sendfile``: a vendor whose work costs the client's machine nothing, for benchmarks.
    ``secure_types`` are served from the API origin with the token; ``redirect_types``
    answer there with a 302 to the artifact origin.
    """

    seed: int = 7
    executions: int = 12
    span: timedelta = timedelta(hours=6)
    newest_start_ms: int | None = None  # None: five minutes before the simulator is built
    token: str = "perfecto-sim-token"  # noqa: S105 (the simulator's own)
    user_id: str = "reporting@example.com"
    tenant_id: str = "sim-tenant"
    page_size: int = 500
    max_window: timedelta = timedelta(days=31)
    video_size: int = 256 * KIB
    artifact_size: int = 64 * KIB
    screenshot_size: int = 16 * KIB
    pdf_size: int = 32 * KIB
    pdf_not_ready_requests: int = 1
    processing_seconds: float = 0.0
    unfinished: int = 0
    secure_types: frozenset[str] = frozenset({"DEVICE_LOGS", "expected_image"})
    redirect_types: frozenset[str] = frozenset({"VITALS"})
    uniform: UniformLayout | None = None  # None: a varied mix, as in real tenants
    latency_seconds: float = 0.0  # added to every request on both origins
    body_dir: str | None = None  # serve bodies from files written there (see materialize)
    request_log_limit: int = 50_000  # oldest entries drop first; ~1 KiB each

    def __post_init__(self) -> None:
        sizes = (self.video_size, self.artifact_size, self.screenshot_size, self.pdf_size)
        if self.executions < 0 or self.page_size < 1 or min(sizes) < 0:
            raise ValueError("executions and sizes must be >= 0, page_size >= 1")
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must be >= 0")
        unknown = set(self.uniform.artifact_types) - set(ARTIFACT_FILES) if self.uniform else set()
        if unknown:
            raise ValueError(f"unknown artifact types {sorted(unknown)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimExecution:
    """One simulated test execution; ``index`` is its position in the newest-first listing."""

    index: int
    id: str
    external_id: str
    name: str
    owner: str
    start_ms: int
    end_ms: int
    status: str
    platform: int
    tags: tuple[str, ...]
    job: tuple[str, int] | None
    project: tuple[str, str] | None
    videos: int
    artifact_types: tuple[str, ...]
    screenshots: tuple[tuple[str, ...], ...]  # file names, one tuple per command
    visual_checks: tuple[VisualCheck, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VisualCheck:
    """A command comparing a screen with a baseline: its expected and its result image."""

    command: int  # the command's position in the commands report
    expected: str  # file names; two checks may share one baseline
    result: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SimFile:
    """A downloadable file; its bytes come from :mod:`archiver_sim.content` by ``body``."""

    execution_id: str
    kind: str  # "video", "screenshot", "expected_image", "result_image", "pdf", or the
    # artifact type ("DEVICE_LOGS"...)
    filename: str
    size: int
    content_type: str
    delivery: Delivery
    body: str

    def chunks(self, chunk_size: int = content.DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        return content.iter_chunks(self.body, self.size, chunk_size, magic=self._magic())

    def digest(self) -> str:
        return content.digest(self.body, self.size, magic=self._magic())

    def _magic(self) -> bytes:
        return content.magic_for(self.content_type)


class _Refused(Exception):
    """A listing request the real API answers with 400 and this ``userMessage``."""


class PerfectoSimulator(RequestLogged):
    """The dataset, its processing state and both origins' applications.

    Start it with :func:`archiver_sim.runner.running` (or ``SimulatorThread``); the
    control methods are thread-safe.
    """

    def __init__(self, config: PerfectoSimConfig | None = None) -> None:
        self.config = config or PerfectoSimConfig()
        newest = self.config.newest_start_ms
        newest = _now_ms() - 5 * 60_000 if newest is None else newest
        self.executions: tuple[SimExecution, ...] = _build_executions(self.config, newest)
        self._by_id = {execution.id: execution for execution in self.executions}
        self._by_external_id: dict[str, list[SimExecution]] = {}
        for execution in self.executions:
            self._by_external_id.setdefault(execution.external_id, []).append(execution)
        self._starts_ascending = [execution.start_ms for execution in reversed(self.executions)]
        self._key = f"perfecto-sim-{self.config.seed}".encode()
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._unfinished = {execution.id for execution in self.executions[: self.config.unfinished]}
        self._finished: set[str] = set()
        self._pdf_requests: dict[str, int] = {}
        self.request_log = RequestLog(self.config.request_log_limit)

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        delay = [self._delay] if self.config.latency_seconds else []
        api = web.Application(
            middlewares=[*delay, self.request_log.recorder("api"), self._authenticate]
        )
        api.router.add_get(EXECUTIONS_PATH, self._list)
        api.router.add_get(PDF_PATH, self._pdf)
        api.router.add_get(EXECUTIONS_PATH + "/{execution_id}/commands", self._commands)
        api.router.add_get(ARTIFACTS_PATH + "/{execution_id}/{filename:.+}", self._api_file)
        api.router.add_get("/_sim/requests", self.request_log.serve)
        files = web.Application(middlewares=[*delay, self.request_log.recorder("files")])
        files.router.add_get("/files/{execution_id}/{filename:.+}", self._signed_file)
        files.router.add_get("/stream/{execution_id}/{filename:.+}", self._streamed_video)
        return {"api": api, "files": files}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self._urls = dict(base_urls)
        with self._lock:
            self._started = time.monotonic()

    @property
    def api_url(self) -> str:
        return self._urls["api"]

    @property
    def files_url(self) -> str:
        return self._urls["files"]

    # -- control (thread-safe) -----------------------------------------------------------

    def is_unfinished(self, execution_id: str) -> bool:
        execution = self.execution(execution_id)
        with self._lock:
            return self._unfinished_locked(execution)

    def set_unfinished(self, execution_id: str) -> None:
        """Keep the execution PROCESSING (no videos, no artifacts) until finished."""
        self.execution(execution_id)
        with self._lock:
            self._finished.discard(execution_id)
            self._unfinished.add(execution_id)

    def finish(self, execution_id: str) -> None:
        self.execution(execution_id)
        with self._lock:
            self._unfinished.discard(execution_id)
            self._finished.add(execution_id)

    def finish_all(self) -> None:
        with self._lock:
            self._unfinished.clear()
            self._finished.update(self._by_id)

    def pdf_requests(self, execution_id: str) -> int:
        with self._lock:
            return self._pdf_requests.get(execution_id, 0)

    # -- the dataset as clients see it -------------------------------------------------

    def execution(self, execution_id: str) -> SimExecution:
        try:
            return self._by_id[execution_id]
        except KeyError:
            raise KeyError(f"no simulated execution {execution_id!r}") from None

    def resource(self, execution_id: str) -> dict[str, Any]:
        """The execution as the listing shows it right now."""
        return self._resource(self.execution(execution_id), self.is_unfinished(execution_id))

    def commands(self, execution_id: str) -> dict[str, Any]:
        execution = self.execution(execution_id)
        return {
            "resources": [
                {"testExecutionId": execution.id, "commands": self._commands_of(execution)}
            ],
            "metadata": {**self._metadata(), "createdAt": str(_now_ms())},
        }

    def files(self, execution_id: str) -> tuple[SimFile, ...]:
        """Every file a complete execution links to, each once.

        Videos, artifacts, screenshots, and the expected and result images of visual checks.
        """
        execution = self.execution(execution_id)
        return (
            *self._videos(execution),
            *self._artifacts(execution),
            *self._shots(execution),
            *self._visual_images(execution),
        )

    def text_link(self, execution_id: str, command: int) -> str:
        """The link a visual check's ``TEXT`` entries hold: text, no file is served there."""
        return f"{self.files_url}/links/{quote(execution_id)}/{command:03d}/terms"

    def url(self, file: SimFile) -> str:
        """Where the API's JSON points for ``file``."""
        if file.delivery == "signed":
            return self.signed_url(file)
        return f"{self.api_url}{ARTIFACTS_PATH}/{file.execution_id}/{quote(file.filename)}"

    def signed_url(self, file: SimFile) -> str:
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": "SIMULATOR/us-east-1/s3/aws4_request",
                "X-Amz-Expires": "3600",
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": self._signature(file),
            }
        )
        return f"{self.files_url}/files/{file.execution_id}/{quote(file.filename)}?{query}"

    def pdf_url(self, execution_id: str) -> str:
        return f"{self.api_url}{PDF_PATH}?testExecutionId={quote(execution_id)}"

    def materialize(self, file: SimFile) -> Path:
        """The file under ``body_dir`` holding ``file``'s body, written first if need be."""
        assert self.config.body_dir is not None
        name = hashlib.sha256(f"{file.body}:{file.size}".encode()).hexdigest()[:40]
        path = Path(self.config.body_dir) / name
        if not path.exists():
            temp = path.with_suffix(f".{threading.get_ident()}.part")
            with temp.open("wb") as out:
                for chunk in file.chunks():
                    out.write(chunk)
            temp.replace(path)
        return path

    def expected_digest(self, url: str) -> tuple[int, str]:
        """``(size, sha256 hex)`` of what ``url`` serves (after redirects), without a download."""
        file = self._file_at(url)
        if file is None:
            raise KeyError(f"the simulator serves no file at {url}")
        return file.size, file.digest()

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        try:
            selection, truncated, page = self._select(request.query)
        except _Refused as refused:
            return _error(400, str(refused))
        with self._lock:
            processing = [self._unfinished_locked(execution) for execution in selection]
        metadata = {
            **self._metadata(),
            "processingStatus": PROCESSING if any(processing) else PROCESSING_COMPLETE,
            "page": page,
            "truncated": truncated,
        }
        resources = [
            self._resource(ex, busy) for ex, busy in zip(selection, processing, strict=True)
        ]
        plan = request.app.get(FAULT_PLAN)
        if plan is not None and plan.claim(request, "empty_page"):
            # A fault seen in the wild: nothing on the page, yet more pages promised.
            resources, metadata["truncated"] = [], True
        return json_response({"resources": resources, "metadata": metadata})

    async def _commands(self, request: web.Request) -> web.Response:
        execution_id = request.match_info["execution_id"]
        if execution_id not in self._by_id:
            return _error(404, f"Test execution {execution_id} was not found")
        return json_response(self.commands(execution_id))

    async def _pdf(self, request: web.Request) -> web.StreamResponse:
        execution = self._by_id.get(request.query.get("testExecutionId", ""))
        if execution is None:
            return _error(404, "Test execution was not found")
        with self._lock:
            earlier = self._pdf_requests.get(execution.id, 0)
            self._pdf_requests[execution.id] = earlier + 1
            busy = self._unfinished_locked(execution)
        if busy or earlier < self.config.pdf_not_ready_requests:
            return web.Response(status=204)
        return await self._send(request, self._pdf_file(execution))

    async def _api_file(self, request: web.Request) -> web.StreamResponse:
        file = self._file(request.match_info["execution_id"], request.match_info["filename"])
        if file is None or file.delivery == "signed":
            return _error(404, "Artifact was not found")
        if file.delivery == "redirect":
            raise web.HTTPFound(self.signed_url(file))
        return await self._send(request, file)

    async def _signed_file(self, request: web.Request) -> web.StreamResponse:
        file = self._file(request.match_info["execution_id"], request.match_info["filename"])
        if file is None:
            return s3_error(404, "NoSuchKey")
        signature = request.query.get("X-Amz-Signature", "")
        if not hmac.compare_digest(signature, self._signature(file)):
            return s3_error(403, "SignatureDoesNotMatch")
        return await self._send(request, file)

    async def _streamed_video(self, request: web.Request) -> web.StreamResponse:
        file = self._file(request.match_info["execution_id"], request.match_info["filename"])
        if file is None or file.content_type != "video/mp4":
            return s3_error(404, "NoSuchKey")
        return await self._send(request, file)

    async def _send(self, request: web.Request, file: SimFile) -> web.StreamResponse:
        if self.config.body_dir is None:
            return await send_file(request, file)
        if file.size <= SMALL_BODY_BYTES:
            # Read from the page cache on the loop: cheaper than the thread hops and the
            # sendfile set-up of a FileResponse, and the body is already on disk.
            body = self.materialize(file).read_bytes()
            return web.Response(body=body, content_type=file.content_type)
        path = await asyncio.to_thread(self.materialize, file)
        return web.FileResponse(path, headers={"Content-Type": file.content_type})

    @web.middleware
    async def _delay(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        await asyncio.sleep(self.config.latency_seconds)
        return await handler(request)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX) and not self._authorized(request):
            return _error(401, "Authentication failed: missing or invalid security token")
        return await handler(request)

    # -- internals -----------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        expected = self.config.token.encode()
        return any(
            hmac.compare_digest(request.headers[name].encode(), expected)
            for name in TOKEN_HEADERS
            if name in request.headers
        )

    def _unfinished_locked(self, execution: SimExecution) -> bool:
        if execution.id in self._finished:
            return False
        if execution.id in self._unfinished:
            return True
        return time.monotonic() - self._started < self.config.processing_seconds

    def _select(self, query: Mapping[str, str]) -> tuple[list[SimExecution], bool, int]:
        """One page of the listing, newest first, and whether more pages follow."""
        page = _int_param(query, "_page")
        page = 1 if page is None else page
        if page < 1:
            raise _Refused("_page must be 1 or more")
        low, high = self._window(query)
        pool: Sequence[SimExecution] = self.executions
        filters = _filters(query)
        if filters:
            pool = [ex for ex in self._candidates(filters, low, high) if _matches(ex, filters)]
            low, high = 0, len(pool)
        first = low + (page - 1) * self.config.page_size
        last = min(high, first + self.config.page_size)
        return list(pool[first:last]), last < high, page

    def _window(self, query: Mapping[str, str]) -> tuple[int, int]:
        """The newest-first index range ``[low, high)`` of the requested time window."""
        count = len(self.executions)
        start = _int_param(query, "startExecutionTime[0]")
        if start is None:
            return 0, count
        end = _int_param(query, "endExecutionTime[0]")
        end = _now_ms() if end is None else end
        if end < start or end - start > self.config.max_window / timedelta(milliseconds=1):
            raise _Refused(WINDOW_REFUSED)
        low = bisect_left(self._starts_ascending, start)
        high = bisect_right(self._starts_ascending, end)
        return count - high, count - low

    def _candidates(
        self, filters: Mapping[str, Collection[str]], low: int, high: int
    ) -> Sequence[SimExecution]:
        if "externalId" not in filters:
            return self.executions[low:high]
        found = (
            ex for value in filters["externalId"] for ex in self._by_external_id.get(value, [])
        )
        return sorted(
            {ex.index: ex for ex in found if low <= ex.index < high}.values(),
            key=lambda ex: ex.index,
        )

    def _metadata(self) -> dict[str, Any]:
        return {
            "createdAt": _now_ms(),
            "apiVersion": "v1",
            "userId": self.config.user_id,
            "tenantId": self.config.tenant_id,
        }

    def _resource(self, execution: SimExecution, processing: bool) -> dict[str, Any]:
        platform = _platform_json(execution.platform)
        duration = execution.end_ms - execution.start_ms
        resource: dict[str, Any] = {
            "id": execution.id,
            "externalId": execution.external_id,
            "name": execution.name,
            "owner": execution.owner,
            "startTime": execution.start_ms,
            "endTime": execution.end_ms,
            "uxDuration": duration * 9 // 10,
            "status": execution.status,
        }
        if execution.job:
            resource["job"] = {"name": execution.job[0], "number": execution.job[1]}
        resource["platforms"] = [platform]
        resource["videos"] = [] if processing else self._videos_json(execution, platform)
        resource["tags"] = list(execution.tags)
        resource["executionEngine"] = {"version": "23.10.0.7"}
        artifacts = [] if processing else self._artifacts(execution)
        resource["artifacts"] = [{"type": file.kind, "path": self.url(file)} for file in artifacts]
        resource["reportURL"] = f"{self.api_url}/test/{execution.id}"
        if execution.project:
            resource["project"] = {"name": execution.project[0], "version": execution.project[1]}
        return resource

    def _videos_json(self, execution: SimExecution, platform: JSONDict) -> list[dict[str, Any]]:
        width, height = (
            int(part) for part in platform["screenResolution"].replace("x", "*").split("*")
        )
        files = self._videos(execution)
        step = (execution.end_ms - execution.start_ms) // max(1, len(files))
        return [
            {
                "startTime": execution.start_ms + n * step,
                "endTime": execution.start_ms + (n + 1) * step,
                "format": "MP4",
                "streamingUrl": f"{self.files_url}/stream/{execution.id}/{quote(file.filename)}",
                "downloadUrl": self.url(file),
                "screen": {"width": width, "height": height},
            }
            for n, file in enumerate(files)
        ]

    def _commands_of(self, execution: SimExecution) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.config.seed}:{execution.id}:commands")
        moment = execution.start_ms
        commands = []
        last = len(execution.screenshots) - 1
        checks = {check.command: check for check in execution.visual_checks}
        for number, shots in enumerate(execution.screenshots):
            duration = rng.randint(40, 4_000)
            failed = execution.status == "FAILED" and number == last
            drawn = rng.choice(COMMAND_NAMES)  # drawn even when unused: the sequence stays
            command: dict[str, Any] = {
                "name": "Image checkpoint" if number in checks else drawn,
                "status": "FAILURE" if failed else "SUCCESS",
            }
            if failed:
                command["message"] = "Stacktrace:\nElementNotFound: //button[@id='submit']"
            command |= {
                "startTime": moment,
                "endTime": moment + duration,
                "uxDuration": 0 if failed else duration,
            }
            if shots:
                command["screenshots"] = [self.url(self._shot(execution, name)) for name in shots]
                command["expectedData"] = [{"type": "TEXT", "value": f"TEXT_{number}"}]
                command["resultData"] = [{"type": "TEXT", "value": f"TEXT_{number}"}]
            if number in checks:
                command |= self._visual_data(execution, checks[number])
            commands.append(command)
            moment += duration + rng.randint(1, 50)
        return commands

    def _visual_data(self, execution: SimExecution, check: VisualCheck) -> dict[str, Any]:
        """``expectedData`` and ``resultData`` of a visual check, shaped as in the document."""
        link = self.text_link(execution.id, check.command)
        return {
            role: [
                {"type": "TEXT", "value": f"TEXT_{check.command}"},
                {"type": "IMAGE_KEY", "value": self.url(image)},
                {"type": "TEXT", "value": link},
            ]
            for role, image in (
                ("expectedData", self._expected_image(execution, check)),
                ("resultData", self._result_image(execution, check)),
            )
        }

    def _videos(self, execution: SimExecution) -> list[SimFile]:
        return [
            self._new_file(
                execution, "video", f"video-{n}.mp4", self.config.video_size, "video/mp4"
            )
            for n in range(execution.videos)
        ]

    def _artifacts(self, execution: SimExecution) -> list[SimFile]:
        files = []
        for kind in execution.artifact_types:
            filename, content_type = ARTIFACT_FILES[kind]
            if kind == "VITALS" and execution.index % 2:
                filename, content_type = "vitals.csv", "text/csv"
            filename = filename.format(owner=execution.owner)
            size = self.config.artifact_size
            files.append(self._new_file(execution, kind, filename, size, content_type))
        return files

    def _delivery(self, kind: str) -> Delivery:
        if kind in self.config.redirect_types:
            return "redirect"
        return "secure" if kind in self.config.secure_types else "signed"

    def _shots(self, execution: SimExecution) -> list[SimFile]:
        return [self._shot(execution, name) for shots in execution.screenshots for name in shots]

    def _shot(self, execution: SimExecution, filename: str) -> SimFile:
        content_type = "image/png" if filename.endswith(".png") else "image/jpeg"
        size = self.config.screenshot_size
        return self._new_file(execution, "screenshot", filename, size, content_type)

    def _visual_images(self, execution: SimExecution) -> list[SimFile]:
        files: dict[str, SimFile] = {}
        for check in execution.visual_checks:
            for file in (
                self._expected_image(execution, check),
                self._result_image(execution, check),
            ):
                files.setdefault(file.filename, file)
        return list(files.values())

    def _expected_image(self, execution: SimExecution, check: VisualCheck) -> SimFile:
        size = self.config.screenshot_size
        return self._new_file(execution, "expected_image", check.expected, size, "image/png")

    def _result_image(self, execution: SimExecution, check: VisualCheck) -> SimFile:
        size = self.config.screenshot_size
        return self._new_file(execution, "result_image", check.result, size, "image/jpeg")

    def _pdf_file(self, execution: SimExecution) -> SimFile:
        size = self.config.pdf_size
        file = self._new_file(execution, "pdf", "report.pdf", size, "application/pdf")
        return replace(file, delivery="secure")

    def _new_file(
        self, execution: SimExecution, kind: str, filename: str, size: int, content_type: str
    ) -> SimFile:
        return SimFile(
            execution_id=execution.id,
            kind=kind,
            filename=filename,
            size=size,
            content_type=content_type,
            delivery=self._delivery(kind),
            body=f"perfecto/{self.config.seed}/{execution.id}/{filename}",
        )

    def _file(self, execution_id: str, filename: str) -> SimFile | None:
        if execution_id not in self._by_id:
            return None
        return next((file for file in self.files(execution_id) if file.filename == filename), None)

    def _file_at(self, url: str) -> SimFile | None:
        parts = urlsplit(url)
        if parts.path == PDF_PATH:
            execution = self._by_id.get(parse_qs(parts.query).get("testExecutionId", [""])[0])
            return self._pdf_file(execution) if execution else None
        for prefix in ("/files/", "/stream/", ARTIFACTS_PATH + "/"):
            if parts.path.startswith(prefix):
                execution_id, _, filename = parts.path[len(prefix) :].partition("/")
                return self._file(execution_id, unquote(filename))
        return None

    def _signature(self, file: SimFile) -> str:
        message = f"{file.execution_id}/{file.filename}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


# -- the dataset ---------------------------------------------------------------------------

JSONDict = dict[str, Any]

NAMES = (
    "com.example.playground",
    "Login: valid credentials",
    "Checkout / pay with saved card",
    "Search ../results pagination",
    "Überprüfung der Anmeldung (ログイン)",
    "CHECK",
    "Profile: edit name & avatar",
)
OWNERS = ("instrumentedtest@devtools.com", "saes@example.com", "qa.lead@example.com")
TAGS = ("regression", "smoke", "nightly", "Native", "Java", "Sample")
JOBS = ("nightly-regression", "release pipeline")
COMMAND_NAMES = (
    "Open application",
    "Click element",
    "Set text",
    "Swipe",
    "Take screenshot",
    "Wait for element",
    "Check text",
)
ARTIFACT_FILES = {
    "DEVICE_LOGS": ("{owner}_device-logs.zip", "application/zip"),
    "NETWORK": ("network.pcap", "application/vnd.tcpdump.pcap"),
    "VITALS": ("vitals.json", "application/json"),
    "APP_CRASH_REPORT": ("crash-report.txt", "text/plain"),
    "HAR_CAPTURE": ("capture.har", "application/octet-stream"),
}
# (deviceId, os, osVersion, screenResolution, location, mobile or browser details)
PLATFORMS: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    ("R58M42ABCDE", "ANDROID", "13", "1080*2340", "US-BOS",
     ("Samsung", "Galaxy S21 SM-G991U", "ATT-US", "Central-vod",
      "o1quew-user 13 TP1A release-keys", "AT&T-United States of America")),
    ("00008110-001A2B3C4D5E6F7A", "IOS", "17.4", "1170*2532", "NA-US-BOS",
     ("Apple", "iPhone-14", "", "", "21E219", "Verizon")),
    ("1_2548D-CA0F-420F-B013-B3456E6B64", "WINDOWS", "11", "1920x1080", "US East",
     ("CHROME", "124")),
    ("2_8C1F-4D2E-9A7B-MACOS", "MAC", "macOS Sonoma", "1440x900", "EU Frankfurt",
     ("SAFARI", "17")),
)  # fmt: skip


def _platform_json(number: int) -> JSONDict:
    device_id, os_name, version, resolution, location, details = PLATFORMS[number]
    platform: JSONDict = {
        "deviceId": device_id,
        "deviceType": "MOBILE" if len(details) > 2 else "DESKTOP",
        "os": os_name,
        "osVersion": version,
        "screenResolution": resolution,
        "location": location,
    }
    if len(details) > 2:
        keys = ("manufacturer", "model", "distributor", "description", "firmware", "operator")
        platform["mobileInfo"] = dict(zip(keys, details, strict=True))
        platform["selectionCriteria"] = {"platformName": os_name.title()}
    else:
        platform["browserInfo"] = {"browserType": details[0], "browserVersion": details[1]}
        platform["selectionCriteria"] = {
            "platformName": os_name.title(),
            "browserName": details[0].title(),
            "resolution": resolution,
            "location": location,
        }
    platform["customFields"] = []
    return platform


def _build_executions(config: PerfectoSimConfig, newest_ms: int) -> tuple[SimExecution, ...]:
    """The dataset, newest first. Start times strictly decrease with the index."""
    rng = random.Random(f"perfecto:{config.seed}")
    span_ms = int(config.span / timedelta(milliseconds=1))
    step = max(1, span_ms // max(1, config.executions))
    executions = []
    group, left_in_group, external_id = 0, 0, ""
    for index in range(config.executions):
        if left_in_group == 0:  # one driver session runs one to three tests
            group, left_in_group = group + 1, rng.choice((1, 1, 2, 3))
            external_id = f"{OWNERS[group % 3]}_RemoteWebDriver_{_hex(config, 'driver', group, 5)}"
        left_in_group -= 1
        start_ms = newest_ms - index * step - rng.randrange(step)
        executions.append(_execution(config, rng, index, group, external_id, start_ms))
    return tuple(executions)


def _execution(
    config: PerfectoSimConfig,
    rng: random.Random,
    index: int,
    group: int,
    external_id: str,
    start_ms: int,
) -> SimExecution:
    status = "FAILED" if index % 3 == 1 else "BLOCKED" if index % 11 == 10 else "PASSED"
    videos = 2 if index % 4 == 0 else 1
    kinds = (
        ("DEVICE_LOGS", index % 4 != 3),
        ("NETWORK", index % 2 == 0),
        ("VITALS", True),
        ("APP_CRASH_REPORT", status == "FAILED"),
        ("HAR_CAPTURE", index % 5 == 2),
    )
    artifact_types = tuple(kind for kind, present in kinds if present)
    # Drawn in this order (end, tags, screenshots) so a seed keeps giving the same dataset.
    end_ms = start_ms + rng.randint(5_000, 300_000)
    tags = tuple(rng.sample(TAGS, rng.randint(1, 3)))
    screenshots = _screenshot_plan(rng)
    visual_checks = _visual_plan(config, index, len(screenshots))
    if config.uniform is not None:
        videos = config.uniform.videos
        artifact_types = config.uniform.artifact_types
        screenshots = tuple(
            (f"screenshots/{number:03d}-0.png",) for number in range(config.uniform.screenshots)
        ) or ((),)
        visual_checks = ()
    return SimExecution(
        index=index,
        id=_hex(config, "execution", index, 12),
        external_id=external_id,
        name=NAMES[index % len(NAMES)],
        owner=OWNERS[group % len(OWNERS)],
        start_ms=start_ms,
        end_ms=end_ms,
        status=status,
        platform=index % len(PLATFORMS),
        tags=tags,
        job=(JOBS[group % 2], 100 + group) if group % 3 else None,
        project=("Sample Script", f"1.{group % 4}") if index % 4 != 3 else None,
        videos=videos,
        artifact_types=artifact_types,
        screenshots=screenshots,
        visual_checks=visual_checks,
    )


def _screenshot_plan(rng: random.Random) -> tuple[tuple[str, ...], ...]:
    """Screenshot file names per command; the first command always has one."""
    plan = []
    for number in range(rng.randint(3, 8)):
        count = 1 if number == 0 else rng.choice((0, 0, 1, 2))
        plan.append(
            tuple(
                f"screenshots/{number:03d}-{shot}.{'png' if (number + shot) % 2 == 0 else 'jpeg'}"
                for shot in range(count)
            )
        )
    return tuple(plan)


def _visual_plan(config: PerfectoSimConfig, index: int, commands: int) -> tuple[VisualCheck, ...]:
    """Visual checks on the second and the last command, now and then one between.

    The last check compares against the first one's baseline: one URL, linked twice.
    Drawn from a generator of its own, so the rest of the dataset stays as it was.
    """
    rng = random.Random(f"perfecto:{config.seed}:{index}:visual")
    numbers = [1, *(n for n in range(2, commands - 1) if rng.random() < 1 / 3), commands - 1]
    checks = [
        VisualCheck(
            command=number,
            expected=f"visual/baseline-{number:03d}.png",
            result=f"visual/capture-{number:03d}.jpeg",
        )
        for number in sorted(set(numbers))
        if 0 < number < commands
    ]
    if len(checks) > 1:
        checks[-1] = replace(checks[-1], expected=checks[0].expected)
    return tuple(checks)


def _hex(config: PerfectoSimConfig, kind: str, number: int, size: int) -> str:
    return hashlib.blake2b(f"{config.seed}:{kind}:{number}".encode(), digest_size=size).hexdigest()


# -- HTTP helpers --------------------------------------------------------------------------

FILTER_FIELDS: dict[str, Callable[[SimExecution], Collection[str]]] = {
    "externalId": lambda ex: (ex.external_id,),
    "tags": lambda ex: ex.tags,
    "jobName": lambda ex: (ex.job[0],) if ex.job else (),
    "jobNumber": lambda ex: (str(ex.job[1]),) if ex.job else (),
}


def _filters(query: Mapping[str, str]) -> dict[str, set[str]]:
    """``tags[0]=a&tags[1]=b`` -> ``{"tags": {"a", "b"}}``; values of one name are ORed."""
    found: dict[str, set[str]] = {}
    for key, value in query.items():
        name = key.partition("[")[0]
        if name in FILTER_FIELDS:
            found.setdefault(name, set()).add(value)
    return found


def _matches(execution: SimExecution, filters: Mapping[str, set[str]]) -> bool:
    return all(
        not values.isdisjoint(FILTER_FIELDS[name](execution)) for name, values in filters.items()
    )


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise _Refused(f"{name} must be an integer") from None


def _error(status: int, message: str) -> web.Response:
    return json_response({"userMessage": message}, status=status)


def _now_ms() -> int:
    return int(time.time() * 1000)
