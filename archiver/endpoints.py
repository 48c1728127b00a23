"""The operator's HTTP endpoints, served from the daemon's event loop: ``/metrics``
(Prometheus text), ``/healthz`` (the process answers) and ``/readyz`` (see
:class:`~archiver.health.Readiness`; 503 when not ready)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from archiver.config import MetricsSettings
from archiver.errors import ArchiverError
from archiver.health import Readiness
from archiver.log import get_logger
from archiver.metrics import CONTENT_TYPE, PrometheusObserver

log = get_logger(__name__)


def build_app(metrics: PrometheusObserver, readiness: Readiness) -> web.Application:
    started = time.monotonic()

    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        # Answering at all is the check: the handler runs on the loop that runs the passes.
        return web.json_response(
            {
                "status": "ok",
                "pid": os.getpid(),
                "uptime_seconds": round(time.monotonic() - started, 3),
            }
        )

    async def readyz(request: web.Request) -> web.Response:
        checks = await readiness.checks()
        ready = all(check.ok for check in checks)
        body = {
            "status": "ready" if ready else "not ready",
            "failed": [check.name for check in checks if not check.ok],
            "checks": [check.to_json() for check in checks],
        }
        return web.json_response(body, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@asynccontextmanager
async def serving(
    settings: MetricsSettings, metrics: PrometheusObserver, readiness: Readiness
) -> AsyncIterator[None]:
    """Serve the endpoints on ``settings``' address while the block runs."""
    runner = web.AppRunner(build_app(metrics, readiness), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise ArchiverError(
                f"metrics.listen: cannot listen on {settings.host}:{settings.port}: "
                f"{exc.strerror or exc}"
            ) from exc
        log.info("endpoints_listening", host=settings.host, port=settings.port)
        yield
    finally:
        await runner.cleanup()
