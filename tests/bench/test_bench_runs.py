"""The benchmark itself works: every workload runs end to end at minute sizes.

Its figures are not checked: timing belongs to ``make bench``, never to the test suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_workload_runs_and_prints_a_row(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    assert table.startswith("Machine: ")
    for workload in ("large:", "small:", "vs sequential script:", "memory:", "scale:", "S3:"):
        assert f"| {workload}" in table, table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 11  # header + rows
    for row in rows[1:]:
        archiver_figure = row.split("|")[3].strip().replace(",", "")
        assert float(archiver_figure) > 0, row
    assert list(tmp_path.iterdir()) == []  # the runs clean up after themselves
