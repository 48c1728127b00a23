"""Serve the Perfecto and DevRev simulators on fixed ports, for a container stack.

``archiver demo`` and the tests run simulators on ephemeral loopback ports in their own
process. A stack of containers (``contrib/compose/``) needs them as a service of its own:
on known ports of every interface, with the URLs in their records (signed artifact links)
naming the host the other containers reach them by::

    python -m archiver_sim.service --public-host simulators --expected /tmp/expected.json

Each vendor has two origins, its API and its files, on ``--port`` and the next ports:
Perfecto API, Perfecto files, DevRev API, DevRev files. The tokens are the vendors' own
(``PERFECTO_TOKEN`` and ``DEVREV_TOKEN`` in the environment, as the archiver reads them).
Every session is complete. ``--expected`` writes the sessions an archiver configured with
``[sources.devrev] version_key = "com.example.shop"``, ``type = "mobile"`` must archive,
as ``{"perfecto": [ids], "devrev": [ids]}``. Serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from aiohttp import web

from archiver_sim.devrev import DevRevSimulator
from archiver_sim.devrev_data import DevRevSimConfig
from archiver_sim.faults import FaultPlan
from archiver_sim.perfecto import PerfectoSimulator
from archiver_sim.perfecto_data import PerfectoSimConfig
from archiver_sim.runner import SHUTDOWN_SECONDS, Simulator

KIB = 1024
FIRST_PORT = 8101
DEVREV_APP = "com.example.shop"
DEVREV_TYPE = "mobile"


def api_ports(first_port: int = FIRST_PORT) -> dict[str, int]:
    """Each vendor's API port: its files origin has the next one."""
    return {"perfecto": first_port, "devrev": first_port + 2}


async def serve_on(
    stack: AsyncExitStack,
    simulator: Simulator,
    *,
    host: str,
    public_host: str,
    port: int,
    latency_seconds: float,
) -> None:
    """Start each origin of ``simulator`` on ``host``, from ``port`` on, one port each."""
    urls: dict[str, str] = {}
    for origin, app in simulator.applications().items():
        FaultPlan(rate=0.0, latency_seconds=latency_seconds).install(origin, app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, host, port).start()
        urls[origin] = f"http://{public_host}:{port}"
        port += 1
    simulator.bind(urls)


def expected_sessions(perfecto: PerfectoSimulator, devrev: DevRevSimulator) -> dict[str, list[str]]:
    return {
        "perfecto": sorted(execution.id for execution in perfecto.executions),
        "devrev": sorted(
            session.session_id
            for session in devrev.sessions
            if session.version_key == DEVREV_APP and session.type == DEVREV_TYPE
        ),
    }


async def serve(args: argparse.Namespace) -> None:
    perfecto = PerfectoSimulator(
        PerfectoSimConfig(
            executions=args.perfecto_executions,
            token=os.environ["PERFECTO_TOKEN"],
            video_size=args.kib * 4 * KIB,
            artifact_size=args.kib * KIB,
            screenshot_size=args.kib * KIB,
            pdf_size=args.kib * KIB,
            pdf_not_ready_requests=0,
        )
    )
    devrev = DevRevSimulator(
        DevRevSimConfig(
            sessions=args.devrev_sessions,
            token=os.environ["DEVREV_TOKEN"],
            media_size=args.kib * 2 * KIB,
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncExitStack() as stack:
        ports = api_ports(args.port)
        for vendor, simulator in (("perfecto", perfecto), ("devrev", devrev)):
            await serve_on(
                stack,
                simulator,
                host=args.host,
                public_host=args.public_host,
                port=ports[vendor],
                latency_seconds=args.latency,
            )
        expected = expected_sessions(perfecto, devrev)
        if args.expected is not None:
            args.expected.write_text(json.dumps(expected))
        counts = ", ".join(f"{vendor} {len(ids)}" for vendor, ids in expected.items())
        print(
            f"serving Perfecto at {perfecto.api_url}, DevRev at {devrev.api_url}; "
            f"sessions to archive: {counts}",
            flush=True,
        )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104
    parser.add_argument(
        "--public-host", default="simulators", help="host name the archivers reach them by"
    )
    parser.add_argument("--port", type=int, default=FIRST_PORT, help="the first of four ports")
    parser.add_argument("--perfecto-executions", type=int, default=300)
    parser.add_argument("--devrev-sessions", type=int, default=300)
    parser.add_argument("--kib", type=int, default=1, help="size unit of the files, in KiB")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added per request")
    parser.add_argument("--expected", type=Path, help="write the sessions to archive here")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
