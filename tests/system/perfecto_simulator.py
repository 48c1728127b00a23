"""A Perfecto simulator for the system tests, on an ephemeral port of 127.0.0.1.

Run with the archiver's Python (inside the image or the systemd machine); prints its API URL
on one line, then serves until SIGTERM or SIGINT::

    python perfecto_simulator.py --executions 6 --token TOKEN [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from archiver_sim.perfecto import PerfectoSimConfig, PerfectoSimulator
from archiver_sim.runner import running


async def serve(config: PerfectoSimConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running(PerfectoSimulator(config)) as simulator:
        print(simulator.api_url, flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=6)
    parser.add_argument("--token", required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    args = parser.parse_args()
    config = PerfectoSimConfig(
        executions=args.executions, token=args.token, latency_seconds=args.latency
    )
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
