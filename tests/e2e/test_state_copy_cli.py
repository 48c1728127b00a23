"""End to end: an installation moved from its SQLite state to PostgreSQL with ``archiver
state copy``, archiving nothing again; ``archiver state migrate`` on its own."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.support.cli import TOKEN, run_archiver, write_config
from tests.support.simulators import PerfectoFactory


def archived(stderr: str) -> list[str]:
    return [
        json.loads(line)["session_id"]
        for line in stderr.splitlines()
        if '"session_archived"' in line
    ]


def test_copy_moves_the_state_without_archiving_anything_again(
    perfecto_sim_factory: PerfectoFactory, postgres_url: str, tmp_path: Path
) -> None:
    sim = perfecto_sim_factory(token=TOKEN, executions=12, unfinished=3)
    on_sqlite = write_config(tmp_path / "sqlite", perfecto_url=sim.api_url)
    first = run_archiver("run", "--once", config=on_sqlite.config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(archived(first.stderr)) == 9

    sqlite_url = f"sqlite:///{on_sqlite.root}/state.db"
    for _ in range(2):  # the second time changes nothing
        copied = run_archiver(
            "state", "copy", "--from", sqlite_url, "--to", postgres_url, "--replica", "host-1"
        )
        assert copied.returncode == 0, copied.stderr
        assert "12 sessions, 1 watermarks, 1 passes" in copied.stdout
        assert "'host-1' writes to the store as the SQLite installation did" in copied.stdout
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute(
            "SELECT status, COUNT(*), COUNT(archived_at) FROM sessions GROUP BY status"
        ).fetchall()
    assert sorted(rows) == [("archived", 9, 9), ("pending", 3, 0)]

    on_postgres = write_config(
        tmp_path / "postgres",
        perfecto_url=sim.api_url,
        store={"url": f"file://{on_sqlite.evidence}"},
        state={"url": postgres_url, "replica": "host-1"},
    )
    status = run_archiver("status", "--json", config=on_postgres.config)
    report = json.loads(status.stdout)
    assert report["sources"][0]["archived"]["total"] == 9, report
    again = run_archiver("run", "--once", config=on_postgres.config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert archived(again.stderr) == []  # nothing archived twice
    sim.finish_all()
    last = run_archiver("run", "--once", config=on_postgres.config)
    assert sorted(archived(last.stderr)) == sorted(e.id for e in sim.executions[:3])
    verified = run_archiver("verify", config=on_postgres.config)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_copy_refuses_what_it_cannot_do(postgres_url: str, tmp_path: Path) -> None:
    backwards = run_archiver("state", "copy", "--from", postgres_url, "--to", postgres_url)
    assert backwards.returncode == 1
    assert "state copy reads a SQLite file" in backwards.stderr
    missing = run_archiver(
        "state", "copy", "--from", f"sqlite:///{tmp_path}/none.db", "--to", postgres_url
    )
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr


def test_migrate_creates_the_schema(postgres_url: str, tmp_path: Path) -> None:
    deployment = write_config(
        tmp_path, perfecto_url="http://127.0.0.1:9", state={"url": postgres_url}
    )
    migrated = run_archiver("state", "migrate", config=deployment.config)
    assert migrated.returncode == 0, migrated.stderr
    assert "schema is at this archiver's version" in migrated.stdout
    with psycopg.connect(postgres_url) as connection:
        versions = connection.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    assert versions is not None and versions[0] == 3
