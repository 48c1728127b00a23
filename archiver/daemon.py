"""The long-running service: APScheduler drives passes, signals stop it cleanly.

Passes never overlap (``max_instances=1``; a pass that runs long makes the scheduler skip,
not stack, the next one). On SIGTERM or SIGINT the engine stops starting new sessions;
sessions already under way get ``shutdown_grace_seconds`` to finish, then they are
cancelled. A cancelled session leaves no manifest (the manifest is always written last),
so the next start simply does it again. A store that can make nothing durable any more
(``StoreBroken``) stops the daemon the same way, and it exits with an error so that its
supervisor (systemd's ``Restart=on-failure``) starts it afresh.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from archiver.engine import Engine, PassReport
from archiver.errors import StoreBroken
from archiver.log import get_logger, redact

log = get_logger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PassRunner:
    """Runs one pass at a time and remembers the one in flight, so stop can wait for it.

    A broken store (:class:`StoreBroken`) is kept in ``broken`` and sets ``stop``.
    """

    def __init__(self, engine: Engine, stop: asyncio.Event) -> None:
        self.engine = engine
        self.stop_event = stop
        self.current: asyncio.Task[Any] | None = None
        self.failed_passes = 0
        self.broken: StoreBroken | None = None

    async def run_pass(self) -> None:
        if self.engine.stopping.is_set():
            return
        self.current = asyncio.current_task()
        try:
            report = await self.engine.run_once()
        except StoreBroken as exc:
            log.error("store_broken", error=redact(str(exc)), action="stopping")
            self.broken = exc
            self.stop_event.set()
            return
        finally:
            self.current = None
        if not report.ok:
            self.failed_passes += 1

    async def stop(self, grace_seconds: float) -> None:
        self.engine.stopping.set()
        task = self.current
        if task is None or task.done():
            return
        log.info("stopping", grace_seconds=grace_seconds)
        done, _ = await asyncio.wait({task}, timeout=grace_seconds)
        if not done:
            log.warning("grace_period_over", action="cancelling in-flight sessions")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)


async def run_daemon(engine: Engine, *, interval_seconds: float, grace_seconds: float) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    runner = PassRunner(engine, stop)
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        runner.run_pass,
        "interval",
        seconds=interval_seconds,
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
        id="archive-pass",
        misfire_grace_time=None,
    )
    scheduler.start()
    log.info("daemon_started", interval_seconds=interval_seconds, sources=sorted(engine.sources))
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await runner.stop(grace_seconds)
        log.info("daemon_stopped")
    if runner.broken is not None:
        raise runner.broken  # the supervisor restarts the daemon


async def run_once_until_signal(engine: Engine, *, grace_seconds: float) -> PassReport:
    """``run --once``: one pass, stopped cleanly by SIGTERM/SIGINT like the daemon."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    pass_task = asyncio.create_task(engine.run_once(), name="archive-pass")
    stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
    done, _ = await asyncio.wait({pass_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    if pass_task not in done:
        engine.stopping.set()
        log.info("stopping", grace_seconds=grace_seconds)
        finished, _ = await asyncio.wait({pass_task}, timeout=grace_seconds)
        if not finished:
            pass_task.cancel()
    stop_task.cancel()
    await asyncio.gather(stop_task, return_exceptions=True)
    try:
        return await pass_task
    except asyncio.CancelledError:
        report = PassReport()
        report.source_errors.append("stopped by signal before the pass finished")
        return report
