"""The long-running service: APScheduler drives passes, signals stop it cleanly.

Passes never overlap (``max_instances=1``; a pass that runs long makes the scheduler skip,
not stack, the next one). On SIGTERM or SIGINT the engine stops starting new sessions;
sessions already under way get ``shutdown_grace_seconds`` to finish, then they are
cancelled. A cancelled session leaves no manifest (the manifest is always written last),
so the next start simply does it again. A store that can make nothing durable any more
(``StoreBroken``) stops the daemon the same way, and it exits with an error so that its
supervisor (systemd's ``Restart=on-failure``) starts it afresh.

Under systemd (``Type=notify``, :mod:`archiver.notify`) the daemon says READY=1 once it
runs (the start-up checks are behind it), a STATUS line after every pass, WATCHDOG=1 from
the event loop while it turns, and STOPPING=1 when a signal arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from archiver.engine import Engine, PassReport
from archiver.errors import StoreBroken
from archiver.log import get_logger, redact
from archiver.notify import SystemdNotifier

log = get_logger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PassRunner:
    """Runs one pass at a time and remembers the one in flight, so stop can wait for it.

    The pass runs in a task of its own inside the scheduler's job: at the end of the grace
    period only the pass is cancelled, and the job itself ends normally, so the scheduler
    has nothing to cancel and nothing to report. A broken store (:class:`StoreBroken`) is
    kept in ``broken`` and sets ``stop``.
    """

    def __init__(
        self, engine: Engine, stop: asyncio.Event, notifier: SystemdNotifier | None = None
    ) -> None:
        self.engine = engine
        self.stop_event = stop
        self.notifier = notifier or SystemdNotifier({})
        self.job: asyncio.Task[Any] | None = None
        self.current: asyncio.Task[PassReport] | None = None
        self.failed_passes = 0
        self.broken: StoreBroken | None = None

    async def run_pass(self) -> None:
        if self.engine.stopping.is_set():
            return
        self.job = asyncio.current_task()
        self.current = asyncio.create_task(self.engine.run_once(), name="archive-pass")
        try:
            report = await self.current
        except asyncio.CancelledError:
            if self.job is not None and self.job.cancelling():
                raise
            log.warning("pass_cancelled", reason="the shutdown grace period ended")
            return
        except StoreBroken as exc:
            log.error("store_broken", error=redact(str(exc)), action="stopping")
            self.broken = exc
            self.stop_event.set()
            return
        except Exception:  # a bug in one pass must not stop the next
            self.failed_passes += 1
            log.exception("pass_crashed")
            return
        finally:
            self.current = None
        if not report.ok:
            self.failed_passes += 1
        self.notifier.status(status_line(report, datetime.now(UTC)))

    async def stop(self, grace_seconds: float) -> None:
        """Start no new session; give the ones under way ``grace_seconds``, then cancel them."""
        self.engine.stopping.set()
        job, current = self.job, self.current
        if job is None or job.done():
            return
        log.info("stopping", grace_seconds=grace_seconds)
        done, _ = await asyncio.wait({job}, timeout=grace_seconds)
        if not done:
            log.warning("grace_period_over", action="cancelling in-flight sessions")
            if current is not None:
                current.cancel()
            await asyncio.wait({job})


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)


def status_line(report: PassReport, at: datetime) -> str:
    """One line for ``systemctl status``: the last pass, and the sources that failed."""
    line = (
        f"last pass {at.strftime('%Y-%m-%d %H:%M:%SZ')}: {report.archived} archived, "
        f"{len(report.failed)} failed, {report.pending} held back"
    )
    failing = sorted({error.split(":", 1)[0] for error in report.source_errors})
    return line + (f"; failing sources: {', '.join(failing)}" if failing else "")


async def _keep_watchdog_fed(notifier: SystemdNotifier, stop: asyncio.Event) -> None:
    """WATCHDOG=1 twice per watchdog period, from the event loop itself: a loop that stops
    turning stops feeding it, and systemd restarts the daemon."""
    if notifier.watchdog_seconds is None:
        return
    while not stop.is_set():
        notifier.watchdog()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), notifier.watchdog_seconds / 2)


async def run_daemon(
    engine: Engine,
    *,
    interval_seconds: float,
    grace_seconds: float,
    notifier: SystemdNotifier | None = None,
) -> None:
    """Run passes until SIGTERM/SIGINT. Called once the start-up checks have passed (the
    state is open, the store checked), so this is where systemd hears READY=1."""
    notifier = notifier or SystemdNotifier()
    stop = asyncio.Event()
    install_stop_signals(stop)
    runner = PassRunner(engine, stop, notifier)
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
    notifier.ready(f"started; sources: {', '.join(sorted(engine.sources)) or 'none'}")
    watchdog = asyncio.create_task(_keep_watchdog_fed(notifier, stop), name="watchdog")
    try:
        await stop.wait()
    finally:
        notifier.stopping(f"stopping; in-flight sessions get {grace_seconds:g} s")
        # The scheduler's executor cancels running jobs when it shuts down, whatever its
        # ``wait`` says: it may only shut down once the pass in flight has ended.
        scheduler.pause()
        await runner.stop(grace_seconds)
        scheduler.shutdown(wait=False)
        stop.set()
        await watchdog
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
