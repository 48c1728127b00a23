"""The benchmark itself works: every workload runs end to end at minute sizes.

Its figures are not checked: timing belongs to ``make bench``, never to the test suite.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.harness import Measured, metric_sum
from bench.workloads import Bench, Sizes
from tests.support import postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_workload_runs_and_prints_a_row(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    assert table.startswith("Machine: ")
    workloads = ("large:", "small:", "vs sequential script:", "memory:", "scale:", "S3:")
    # The replicas' five rows need the PostgreSQL server the tests use.
    replicas = ("replicas:",) if postgres.unavailable() is None else ()
    for workload in (*workloads, "metrics:", *replicas):
        assert f"| {workload}" in table, table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 13 + 5 * len(replicas)  # header + rows
    metrics, cpu = [row for row in rows if row.startswith("| metrics:")]
    assert "| CPU ms/artifact |" in cpu, cpu
    cells = [cell.strip() for cell in metrics.split("|")]
    assert cells[2] == "artifacts/s" and cells[6] == ">= 0.95 x", metrics
    assert float(cells[4].replace(",", "")) > 0 and float(cells[5]) > 0, metrics  # off, ratio
    for row in rows[1:]:
        archiver_figure = row.split("|")[3].strip().replace(",", "")
        if "429s answered" in row:  # a count that is 0 when all goes well
            assert float(archiver_figure) >= 0, row
        else:
            assert float(archiver_figure) > 0, row
    assert list(tmp_path.iterdir()) == []  # the runs clean up after themselves


def test_rounds_alternate_their_order_and_keep_each_side_s_best(tmp_path: Path) -> None:
    calls: list[str] = []

    def measure(name: str, seconds: list[float]) -> Callable[[], Measured]:
        def run() -> Measured:
            calls.append(name)
            return Measured(seconds=seconds.pop(0), files=1, bytes=1, peak_rss_mib=1.0)

        return run

    bench = Bench(tmp_path, Sizes(repeat=3))
    ours, theirs = bench.best_of_rounds(
        measure("ours", [3.0, 1.0, 2.0]), measure("theirs", [5.0, 6.0, 4.0])
    )
    assert calls == ["ours", "theirs", "theirs", "ours", "ours", "theirs"]
    assert (ours.seconds, theirs.seconds) == (1.0, 4.0)


def test_rounds_keep_every_run_of_each_side(tmp_path: Path) -> None:
    calls: list[str] = []

    def measure(name: str) -> Callable[[], str]:
        def run() -> str:
            calls.append(name)
            return f"{name}{len(calls)}"

        return run

    off, on = Bench(tmp_path, Sizes(repeat=3)).rounds(measure("off"), measure("on"))
    assert calls == ["off", "on", "on", "off", "off", "on"]
    assert (off, on) == (["off1", "off4", "off5"], ["on2", "on3", "on6"])


def test_a_counter_is_summed_over_its_labels() -> None:
    exposition = (
        "# HELP archiver_artifacts_archived_total Artifacts of archived sessions.\n"
        "# TYPE archiver_artifacts_archived_total counter\n"
        'archiver_artifacts_archived_total{source="perfecto"} 40.0\n'
        'archiver_artifacts_archived_total{source="testmo"} 2.0\n'
        'archiver_artifacts_archived_created{source="perfecto"} 1.7e+09\n'
    )
    assert metric_sum(exposition, "archiver_artifacts_archived_total") == 42.0
    assert metric_sum(exposition, "archiver_bytes_archived_total") is None


@pytest.mark.slow
def test_the_export_memory_figure_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.export_memory",
            "--sizes-mib",
            "1,2",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("| ") and "MiB |" in line
    ]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| 1 MiB", "out"],
        ["| 1 MiB", "zip"],
        ["| 2 MiB", "out"],
        ["| 2 MiB", "zip"],
    ]
    assert list(tmp_path.iterdir()) == []  # stores and bags removed
