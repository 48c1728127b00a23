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

The executions, their files and their processing state are the dataset,
:class:`~archiver_sim.perfecto_data.PerfectoData`, built from :class:`PerfectoSimConfig`;
this module only serves it (a page costs the same with 10 or 100,000 executions).

Routes under ``/_sim/`` are not part of the vendor API: test helpers only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.base import FinishControl, SimulatorBase
from archiver_sim.faults import FAULT_PLAN
from archiver_sim.http import json_response, s3_error, send_file
from archiver_sim.perfecto_data import (
    COMMAND_NAMES,
    KIB,
    JSONDict,
    PerfectoData,
    PerfectoSimConfig,
    SimExecution,
    SimFile,
    UniformLayout,
    VisualCheck,
    platform_json,
)

__all__ = [
    "EXECUTIONS_PATH",
    "SMALL_BODY_BYTES",
    "WINDOW_REFUSED",
    "PerfectoSimConfig",
    "PerfectoSimulator",
    "SimFile",
    "UniformLayout",
]

API_PREFIX = "/export/api/v1"
EXECUTIONS_PATH = f"{API_PREFIX}/test-executions"
PDF_PATH = f"{EXECUTIONS_PATH}/pdf"
ARTIFACTS_PATH = f"{API_PREFIX}/artifacts"
TOKEN_HEADERS = ("PERFECTO-AUTHORIZATION", "PERFECTO_AUTHORIZATION")
PROCESSING = "PROCESSING"
PROCESSING_COMPLETE = "PROCESSING_COMPLETE"
WINDOW_REFUSED = "Time period is not in supported range"

# With ``body_dir``, bodies up to this size are read into the answer instead of sent with sendfile.
SMALL_BODY_BYTES = 256 * KIB


class _Refused(Exception):
    """A listing request the real API answers with 400 and this ``userMessage``."""


class PerfectoSimulator(FinishControl[str], SimulatorBase):
    """Both origins' applications over a :class:`PerfectoData`.

    Start it with :func:`archiver_sim.runner.running` (or ``SimulatorThread``); the
    control methods are thread-safe.
    """

    data: PerfectoData

    def __init__(self, config: PerfectoSimConfig | None = None) -> None:
        self.config = config = config or PerfectoSimConfig()
        super().__init__(config.request_log_limit)
        newest = config.newest_start_ms
        self.data = PerfectoData(config, _now_ms() - 5 * 60_000 if newest is None else newest)
        self.executions: tuple[SimExecution, ...] = self.data.executions
        self._key = f"perfecto-sim-{config.seed}".encode()
        self._started = time.monotonic()

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        delay = [self._delay] if self.config.latency_seconds else []
        api = self.api_application(self._authenticate, outer=delay)
        api.router.add_get(EXECUTIONS_PATH, self._list)
        api.router.add_get(PDF_PATH, self._pdf)
        api.router.add_get(EXECUTIONS_PATH + "/{execution_id}/commands", self._commands)
        api.router.add_get(ARTIFACTS_PATH + "/{execution_id}/{filename:.+}", self._api_file)
        files = web.Application(middlewares=[*delay, self.request_log.recorder("files")])
        files.router.add_get("/files/{execution_id}/{filename:.+}", self._signed_file)
        files.router.add_get("/stream/{execution_id}/{filename:.+}", self._streamed_video)
        return {"api": api, "files": files}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        super().bind(base_urls)
        self._started = time.monotonic()

    # -- control (thread-safe) -----------------------------------------------------------

    def is_unfinished(self, execution_id: str) -> bool:
        return self._processing(self.data.session(execution_id))

    def set_unfinished(self, execution_id: str) -> None:
        """Keep the execution PROCESSING (no videos, no artifacts) until finished."""
        self.data.session(execution_id)
        self.data.finished.discard(execution_id)
        self.data.unfinished.add(execution_id)

    def finish(self, execution_id: str) -> None:
        super().finish(execution_id)
        self.data.finished.add(execution_id)

    def finish_all(self) -> list[str]:
        finished = super().finish_all()
        for execution in self.executions:
            self.data.finished.add(execution.id)
        return finished

    def pdf_requests(self, execution_id: str) -> int:
        return self.data.pdf_requests(execution_id)

    # -- the dataset as clients see it -------------------------------------------------

    def execution(self, execution_id: str) -> SimExecution:
        return self.data.session(execution_id)

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
        """Every file a complete execution links to, each once (see :meth:`PerfectoData.files`)."""
        return self.data.files(execution_id)

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

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        try:
            selection, truncated, page = self._select(request.query)
        except _Refused as refused:
            return _error(400, str(refused))
        processing = [self._processing(execution) for execution in selection]
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
        if self.data.find(execution_id) is None:
            return _error(404, f"Test execution {execution_id} was not found")
        return json_response(self.commands(execution_id))

    async def _pdf(self, request: web.Request) -> web.StreamResponse:
        execution = self.data.find(request.query.get("testExecutionId", ""))
        if execution is None:
            return _error(404, "Test execution was not found")
        earlier = self.data.count_pdf_request(execution.id)
        if self._processing(execution) or earlier < self.config.pdf_not_ready_requests:
            return web.Response(status=204)
        return await self._send(request, self.data.pdf_file(execution))

    async def _api_file(self, request: web.Request) -> web.StreamResponse:
        file = self.data.file(request.match_info["execution_id"], request.match_info["filename"])
        if file is None or file.delivery == "signed":
            return _error(404, "Artifact was not found")
        if file.delivery == "redirect":
            raise web.HTTPFound(self.signed_url(file))
        return await self._send(request, file)

    async def _signed_file(self, request: web.Request) -> web.StreamResponse:
        file = self.data.file(request.match_info["execution_id"], request.match_info["filename"])
        if file is None:
            return s3_error(404, "NoSuchKey")
        signature = request.query.get("X-Amz-Signature", "")
        if not hmac.compare_digest(signature, self._signature(file)):
            return s3_error(403, "SignatureDoesNotMatch")
        return await self._send(request, file)

    async def _streamed_video(self, request: web.Request) -> web.StreamResponse:
        file = self.data.file(request.match_info["execution_id"], request.match_info["filename"])
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

    def _processing(self, execution: SimExecution) -> bool:
        if execution.id in self.data.finished:
            return False
        if execution.id in self.data.unfinished:
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
        return self.data.window(start, end)

    def _candidates(
        self, filters: Mapping[str, Collection[str]], low: int, high: int
    ) -> Sequence[SimExecution]:
        if "externalId" not in filters:
            return self.executions[low:high]
        return self.data.with_external_ids(filters["externalId"], low, high)

    def _metadata(self) -> dict[str, Any]:
        return {
            "createdAt": _now_ms(),
            "apiVersion": "v1",
            "userId": self.config.user_id,
            "tenantId": self.config.tenant_id,
        }

    def _resource(self, execution: SimExecution, processing: bool) -> dict[str, Any]:
        platform = platform_json(execution.platform)
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
        artifacts = [] if processing else self.data.artifacts(execution)
        resource["artifacts"] = [{"type": file.kind, "path": self.url(file)} for file in artifacts]
        resource["reportURL"] = f"{self.api_url}/test/{execution.id}"
        if execution.project:
            resource["project"] = {"name": execution.project[0], "version": execution.project[1]}
        return resource

    def _videos_json(self, execution: SimExecution, platform: JSONDict) -> list[dict[str, Any]]:
        width, height = (
            int(part) for part in platform["screenResolution"].replace("x", "*").split("*")
        )
        files = self.data.videos(execution)
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
                command["screenshots"] = [
                    self.url(self.data.shot(execution, name)) for name in shots
                ]
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
                ("expectedData", self.data.expected_image(execution, check)),
                ("resultData", self.data.result_image(execution, check)),
            )
        }

    def served_file(self, url: str) -> SimFile | None:
        """The file ``url`` serves (after redirects), if any."""
        parts = urlsplit(url)
        if parts.path == PDF_PATH:
            execution = self.data.find(parse_qs(parts.query).get("testExecutionId", [""])[0])
            return self.data.pdf_file(execution) if execution else None
        for prefix in ("/files/", "/stream/", ARTIFACTS_PATH + "/"):
            if parts.path.startswith(prefix):
                execution_id, _, filename = parts.path[len(prefix) :].partition("/")
                return self.data.file(execution_id, unquote(filename))
        return None

    def _signature(self, file: SimFile) -> str:
        message = f"{file.execution_id}/{file.filename}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


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
