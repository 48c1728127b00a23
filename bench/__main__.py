"""``make bench``: measure the archiver against baselines, side by side, in one run.

Starts a Perfecto simulator on loopback (and the S3 API server the tests use), runs each
workload through the installed ``archiver`` and through its baseline, and prints a table.
Every figure is measured in this run. ``--tiny`` shrinks everything to check the
benchmark itself works (the test suite does that); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.workloads import TINY, WORKLOADS, Bench, Row, Sizes


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="minute sizes: a smoke run")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--workdir", type=Path, default=None, help="where runs write files")
    args = parser.parse_args()
    sizes = TINY if args.tiny else Sizes()
    started, stolen_before = time.monotonic(), stolen_cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="archiver-bench-", dir=args.workdir) as workdir:
        bench = Bench(Path(workdir), sizes)
        rows: list[Row] = []
        for name in args.only:
            print(f"running {name}...", file=sys.stderr, flush=True)
            rows += getattr(bench, name)()
    print(machine())
    stolen_after = stolen_cpu_seconds()
    if stolen_before is not None and stolen_after is not None:
        # On a VM, CPU time the hypervisor gave to other guests: a measure of the noise.
        print(
            f"CPU steal during the run: {stolen_after - stolen_before:.1f} s "
            f"in {time.monotonic() - started:.0f} s"
        )
    print(table(rows))
    return 0 if all(row.met for row in rows) or args.tiny else 1


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def stolen_cpu_seconds() -> float | None:
    """CPU time the hypervisor has taken from this machine since boot, summed over CPUs."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def table(rows: list[Row]) -> str:
    lines = [
        "| workload | metric | archiver | baseline | ratio | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        baseline = f"{row.baseline:,.1f}" if row.baseline is not None else ""
        ratio = f"{row.ratio:.2f}" if row.baseline is not None else ""
        met = ("yes" if row.met else "NO") if row.target else ""
        lines.append(
            f"| {row.workload} | {row.metric} | {row.archiver:,.1f} | {baseline} | {ratio} "
            f"| {row.target} | {met} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
