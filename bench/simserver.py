"""The benchmark's vendor: a Perfecto simulator served by a process of its own.

``python -m bench.simserver SPEC.json`` starts the simulator the spec describes, writes every
artifact URL (one per line, per execution in listing order) to ``spec["urls_file"]``,
prints one JSON line with the origins' base URLs, and serves until stdin closes. Serving
from another process keeps the simulator's work off the measured process's event loop, and
serving bodies prepared on disk with ``sendfile`` (``body_dir``) keeps it off the machine's
CPUs as far as possible, as a vendor far away would be.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from archiver_sim.faults import FaultPlan
from archiver_sim.perfecto import PerfectoSimConfig, PerfectoSimulator, UniformLayout
from archiver_sim.runner import running


def simulator_for(spec: dict[str, Any]) -> PerfectoSimulator:
    return PerfectoSimulator(
        PerfectoSimConfig(
            seed=spec.get("seed", 11),
            executions=spec["executions"],
            span=timedelta(hours=spec.get("span_hours", 12)),
            page_size=500,
            uniform=UniformLayout(
                videos=spec.get("videos", 1),
                artifact_types=tuple(spec.get("artifact_types", ())),
                screenshots=spec.get("screenshots", 0),
            ),
            video_size=spec["video_size"],
            artifact_size=spec.get("artifact_size", spec["video_size"]),
            screenshot_size=spec.get("screenshot_size", spec["video_size"]),
            pdf_not_ready_requests=0,
            secure_types=frozenset(),
            redirect_types=frozenset(),
            latency_seconds=spec.get("latency_seconds", 0.0),
            body_dir=spec.get("body_dir"),
            request_log_limit=0,
        )
    )


def write_urls(simulator: PerfectoSimulator, path: Path) -> None:
    """Every file's URL; with ``body_dir``, every body is written to disk first."""
    with path.open("w") as out:
        for execution in simulator.executions:
            for file in simulator.files(execution.id):
                if simulator.config.body_dir is not None:
                    simulator.materialize(file)
                out.write(simulator.url(file) + "\n")


async def serve(spec: dict[str, Any]) -> None:
    simulator = simulator_for(spec)
    # The vendor's own limit on its API: 429 beyond ``api_requests_per_second``.
    limit = spec.get("api_requests_per_second", 0.0)
    plan = FaultPlan(rate=0.0, origins=("api",), requests_per_second=limit) if limit else None
    async with running(simulator, faults=plan):
        write_urls(simulator, Path(spec["urls_file"]))
        print(json.dumps({"api": simulator.api_url, "files": simulator.files_url}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    # What the vendor saw, once the benchmark is done with it.
    counted = {}
    if plan is not None and plan.first_seen_at is not None and plan.last_seen_at is not None:
        counted = {
            "api_requests": plan.seen,
            "api_seconds": plan.last_seen_at - plan.first_seen_at,
            "rate_limited": plan.counts()["429"],
        }
    print(json.dumps(counted), flush=True)


if __name__ == "__main__":
    asyncio.run(serve(json.loads(Path(sys.argv[1]).read_text())))
