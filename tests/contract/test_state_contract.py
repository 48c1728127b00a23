"""The State contract (archiver/state/__init__.py), run over every implementation.

To add an implementation, add a param to ``backend``: a URL opening a fresh, empty state.
Checks on files (permissions, garbage file) run only for backends with a ``path``, checks of
the single-process lock only for backends that are not ``shared``. PostgreSQL runs on the
server of :mod:`tests.support.postgres` (a database of its own per test), or skips.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import archiver
from archiver.errors import StateError, StateLocked
from archiver.model import PassOutcome
from archiver.state import State, open_state
from archiver.state.sqlite import SqliteState
from archiver.state.sqlite_db import Database

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
SRC = "perfecto"


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    path: Path | None = None  # the database file, for implementations that have one
    shared: bool = False  # opened by many processes at once: no single-process lock


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "var" / "state.db"
        yield Backend("sqlite", f"sqlite:///{path}", path)
    elif request.param == "postgres":
        yield Backend("postgres", request.getfixturevalue("postgres_url"), shared=True)
    else:
        raise AssertionError(request.param)


@pytest.fixture
async def state(backend: Backend) -> AsyncIterator[State]:
    opened = await open_state(backend.url)
    try:
        yield opened
    finally:
        await opened.close()


def file_backend(backend: Backend) -> Path:
    if backend.path is None:
        pytest.skip(f"{backend.name} keeps no local file")
    return backend.path


def locking_backend(backend: Backend) -> None:
    if backend.shared:
        pytest.skip(f"{backend.name} is shared by design: no single-process lock")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- watermarks -------------------------------------------------------------------------


async def test_watermark_is_none_until_set(state: State) -> None:
    assert await state.watermark(SRC) is None


async def test_watermark_roundtrip_is_tz_aware_utc(state: State) -> None:
    paris = timezone(timedelta(hours=2))
    moment = datetime(2026, 3, 1, 14, 30, 0, 654321, tzinfo=paris)
    await state.set_watermark(SRC, moment)
    await state.set_watermark("devrev", at(5))

    stored = await state.watermark(SRC)

    assert stored == moment
    assert stored is not None and stored.utcoffset() == timedelta(0)
    assert stored.microsecond == 654321
    assert await state.watermark("devrev") == at(5)


async def test_watermark_can_move_back(state: State) -> None:
    await state.set_watermark(SRC, at(10))
    await state.set_watermark(SRC, at(3))
    assert await state.watermark(SRC) == at(3)


async def test_naive_times_are_refused(state: State) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await state.set_watermark(SRC, datetime(2026, 3, 1, 12, 0))


# --- transitions ------------------------------------------------------------------------


async def test_unknown_session_is_none(state: State) -> None:
    assert await state.get(SRC, "nope") is None


async def test_pending_then_failed_then_archived(state: State) -> None:
    await state.record_pending(SRC, "s1", at=at(0), locator="ext-1", started_at=at(-30))
    pending = await state.get(SRC, "s1")
    assert pending is not None
    assert (pending.status, pending.attempts, pending.locator) == ("pending", 0, "ext-1")
    assert pending.started_at == at(-30)
    assert pending.first_seen == pending.updated_at == at(0)
    assert pending.first_seen.tzinfo is not None

    attempts = await state.record_failure(SRC, "s1", error="boom", at=at(1))
    failed = await state.get(SRC, "s1")
    assert attempts == 1
    assert failed is not None
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 1, "boom")
    assert failed.locator == "ext-1", "a failure without a locator keeps the known one"
    assert failed.started_at == at(-30)
    assert (failed.first_seen, failed.updated_at) == (at(0), at(1))

    await state.record_success(SRC, "s1", manifest_key="perfecto/s1/manifest.json", at=at(2))
    archived = await state.get(SRC, "s1")
    assert archived is not None
    assert archived.status == "archived"
    assert archived.manifest_key == "perfecto/s1/manifest.json"
    assert archived.last_error is None
    assert (archived.first_seen, archived.updated_at) == (at(0), at(2))


async def test_success_for_an_unknown_session_creates_it(state: State) -> None:
    await state.record_success(SRC, "s1", manifest_key="k", at=at(0))
    record = await state.get(SRC, "s1")
    assert record is not None
    assert (record.status, record.manifest_key, record.attempts) == ("archived", "k", 0)
    assert record.first_seen == at(0)


async def test_failure_for_an_unknown_session_creates_it(state: State) -> None:
    attempts = await state.record_failure(
        SRC, "s1", error="e", at=at(0), locator="x", started_at=at(-1)
    )
    record = await state.get(SRC, "s1")
    assert attempts == 1
    assert record is not None
    assert (record.status, record.locator, record.started_at) == ("failed", "x", at(-1))


async def test_sessions_are_kept_per_source(state: State) -> None:
    await state.record_success(SRC, "s1", manifest_key="k", at=at(0))
    assert await state.get("devrev", "s1") is None
    assert await state.get_many("devrev", ["s1"]) == {}


# --- attempts and retries ---------------------------------------------------------------


async def test_attempts_count_up(state: State) -> None:
    counts = [await state.record_failure(SRC, "s1", error=f"e{n}", at=at(n)) for n in range(4)]
    record = await state.get(SRC, "s1")
    assert counts == [1, 2, 3, 4]
    assert record is not None and record.last_error == "e3"


async def test_retryable_failures_respect_max_attempts(state: State) -> None:
    await state.record_failure(SRC, "once", error="e", at=at(0), started_at=at(-5))
    for _ in range(3):
        await state.record_failure(SRC, "thrice", error="e", at=at(0), started_at=at(-9))
    await state.record_failure("devrev", "other-source", error="e", at=at(0))
    await state.record_pending(SRC, "waiting", at=at(0))

    assert [r.session_id for r in await state.retryable_failures(SRC, max_attempts=4)] == [
        "thrice",
        "once",
    ]
    assert [r.session_id for r in await state.retryable_failures(SRC, max_attempts=3)] == ["once"]
    assert await state.retryable_failures(SRC, max_attempts=1) == []


async def test_pending_lists_oldest_started_first(state: State) -> None:
    await state.record_pending(SRC, "newer", at=at(0), started_at=at(-1))
    await state.record_pending(SRC, "older", at=at(0), started_at=at(-60))
    await state.record_pending(SRC, "unknown-start", at=at(0))
    await state.record_failure(SRC, "failed", error="e", at=at(0), started_at=at(-90))
    await state.record_pending("devrev", "elsewhere", at=at(0))

    pending = await state.pending(SRC)

    assert [r.session_id for r in pending] == ["older", "newer", "unknown-start"]
    assert all(r.status == "pending" for r in pending)


async def test_pending_after_failure_keeps_attempts(state: State) -> None:
    await state.record_failure(SRC, "s1", error="e", at=at(0))
    await state.record_pending(SRC, "s1", at=at(1))
    record = await state.get(SRC, "s1")
    assert record is not None
    assert (record.status, record.attempts) == ("pending", 1)
    assert await state.retryable_failures(SRC, max_attempts=5) == []


# --- archived rows are never downgraded -------------------------------------------------


async def test_failure_on_archived_row_keeps_evidence(state: State) -> None:
    await state.record_success(SRC, "s1", manifest_key="k1", at=at(0))

    attempts = await state.record_failure(SRC, "s1", error="re-archive failed", at=at(1))

    record = await state.get(SRC, "s1")
    assert attempts == 1
    assert record is not None
    assert (record.status, record.manifest_key) == ("archived", "k1")
    assert record.last_error == "re-archive failed"
    assert await state.retryable_failures(SRC, max_attempts=10) == []
    assert (await state.get_many(SRC, ["s1"]))["s1"].status == "archived"


async def test_pending_on_archived_row_keeps_evidence(state: State) -> None:
    await state.record_success(SRC, "s1", manifest_key="k1", at=at(0))

    await state.record_pending(SRC, "s1", at=at(1), locator="ext")

    record = await state.get(SRC, "s1")
    assert record is not None
    assert (record.status, record.manifest_key) == ("archived", "k1")
    assert await state.pending(SRC) == []


async def test_success_after_failed_rearchive_clears_error(state: State) -> None:
    await state.record_success(SRC, "s1", manifest_key="k1", at=at(0))
    await state.record_failure(SRC, "s1", error="e", at=at(1))
    await state.record_success(SRC, "s1", manifest_key="k2", at=at(2))
    record = await state.get(SRC, "s1")
    assert record is not None
    assert (record.status, record.manifest_key, record.last_error) == ("archived", "k2", None)


# --- bulk checks, counts, forget --------------------------------------------------------


async def test_get_many_answers_ten_thousand_ids_at_once(state: State) -> None:
    archived = {f"s{n:05d}" for n in range(0, 10_000, 97)}
    for session_id in archived:
        await state.record_success(SRC, session_id, manifest_key=f"k/{session_id}", at=at(0))
    await state.record_failure(SRC, "s00001", error="e", at=at(0), locator="ext-1")
    await state.record_pending(SRC, "s00002", at=at(0))
    await state.record_success("devrev", "s00003", manifest_key="k", at=at(0))
    asked = [f"s{n:05d}" for n in range(10_000)]

    found = await state.get_many(SRC, asked)

    assert set(found) == archived | {"s00001", "s00002"}
    assert {key for key, record in found.items() if record.status == "archived"} == archived
    assert found["s00097"] == await state.get(SRC, "s00097")
    assert (found["s00001"].status, found["s00001"].locator) == ("failed", "ext-1")
    assert found["s00002"].status == "pending"
    assert await state.get_many(SRC, []) == {}
    assert list(await state.get_many(SRC, ("s00000", "s00000", "missing"))) == ["s00000"]


async def test_counts_by_status_overall_and_per_source(state: State) -> None:
    await state.record_success(SRC, "a", manifest_key="k", at=at(0))
    await state.record_success(SRC, "b", manifest_key="k", at=at(0))
    await state.record_failure(SRC, "c", error="e", at=at(0))
    await state.record_pending("devrev", "d", at=at(0))

    assert await state.counts() == {"archived": 2, "failed": 1, "pending": 1}
    assert await state.counts(SRC) == {"archived": 2, "failed": 1, "pending": 0}
    assert await state.counts("nobody") == {"archived": 0, "failed": 0, "pending": 0}


async def test_forget_removes_only_that_session(state: State) -> None:
    await state.record_failure(SRC, "s1", error="e", at=at(0))
    await state.record_failure(SRC, "s2", error="e", at=at(0))

    await state.forget(SRC, "s1")
    await state.forget(SRC, "never-seen")

    assert await state.get(SRC, "s1") is None
    assert await state.get(SRC, "s2") is not None
    assert await state.record_failure(SRC, "s1", error="e", at=at(1)) == 1


# --- passes and the summary `archiver status` shows -------------------------------------


async def test_summary_of_an_unknown_source_is_empty(state: State) -> None:
    summary = await state.summary(SRC, archived_since=at(0))

    assert summary.source == SRC
    assert (summary.watermark, summary.last_pass, summary.last_success_at) == (None, None, None)
    assert (summary.archived, summary.archived_recently, summary.held_back) == (0, 0, 0)
    assert (summary.failing, summary.newest_error, summary.oldest_unarchived) == (0, None, None)
    assert await state.oldest_unarchived(SRC) is None


async def test_summary_counts_by_status_and_recent_archives(state: State) -> None:
    await state.record_success(SRC, "old", manifest_key="k0", at=at(0))
    await state.record_success(SRC, "new", manifest_key="k1", at=at(60))
    await state.record_pending(SRC, "busy", at=at(61))
    await state.record_failure(SRC, "bad1", error="first", at=at(62), started_at=at(-90))
    await state.record_failure(SRC, "bad2", error="newest", at=at(63), started_at=at(-30))
    await state.record_success("devrev", "other", manifest_key="k2", at=at(60))
    await state.set_watermark(SRC, at(50))

    summary = await state.summary(SRC, archived_since=at(30))

    assert (summary.archived, summary.archived_recently) == (2, 1)
    assert (summary.held_back, summary.failing) == (1, 2)
    assert (summary.newest_error, summary.newest_error_at) == ("newest", at(63))
    assert summary.watermark == at(50)
    oldest = summary.oldest_unarchived
    assert oldest is not None and (oldest.session_id, oldest.started_at) == ("bad1", at(-90))
    assert await state.oldest_unarchived(SRC) == oldest


async def test_archived_at_is_the_first_archive_not_a_later_one(state: State) -> None:
    await state.record_success(SRC, "s1", manifest_key="k", at=at(0))
    await state.record_failure(SRC, "s1", error="re-archive failed", at=at(100))
    await state.record_success(SRC, "s1", manifest_key="k", at=at(120))

    assert (await state.summary(SRC, archived_since=at(1))).archived_recently == 0
    assert (await state.summary(SRC, archived_since=at(0))).archived_recently == 1


async def test_an_archived_failure_is_not_an_unarchived_session(state: State) -> None:
    await state.record_failure(SRC, "s1", error="e", at=at(0), started_at=at(-10))
    await state.record_success(SRC, "s1", manifest_key="k", at=at(5))

    assert await state.oldest_unarchived(SRC) is None
    assert (await state.summary(SRC, archived_since=at(0))).failing == 0


async def test_the_last_pass_is_kept_with_the_last_success(state: State) -> None:
    await state.record_pass(SRC, PassOutcome(started_at=at(0), finished_at=at(1), error=None))
    await state.record_pass(SRC, PassOutcome(started_at=at(5), finished_at=at(6), error="boom"))

    summary = await state.summary(SRC, archived_since=at(0))

    assert summary.last_pass == PassOutcome(started_at=at(5), finished_at=at(6), error="boom")
    assert summary.last_pass is not None and not summary.last_pass.ok
    assert summary.last_success_at == at(1)
    await state.record_pass(SRC, PassOutcome(started_at=at(9), finished_at=at(10), error=None))
    assert (await state.summary(SRC, archived_since=at(0))).last_success_at == at(10)


async def test_source_names_lists_every_source_with_anything_kept(state: State) -> None:
    assert await state.source_names() == []
    await state.record_pending("testmo", "s", at=at(0))
    await state.set_watermark("devrev", at(0))
    await state.record_pass(SRC, PassOutcome(started_at=at(0), finished_at=at(1), error=None))

    assert await state.source_names() == ["devrev", SRC, "testmo"]


# --- reading beside the process that holds the state ------------------------------------


async def test_read_only_reads_beside_the_holder_and_refuses_writes(
    backend: Backend, state: State
) -> None:
    await state.record_success(SRC, "s1", manifest_key="k1", at=at(1))
    reader = await open_state(backend.url, read_only=True)
    try:
        assert (await reader.summary(SRC, archived_since=at(0))).archived == 1
        await state.record_success(SRC, "s2", manifest_key="k2", at=at(2))
        assert (await reader.summary(SRC, archived_since=at(0))).archived == 2
        with pytest.raises(StateError):
            await reader.record_pending(SRC, "s3", at=at(3))
    finally:
        await reader.close()
    assert await state.get(SRC, "s3") is None
    await state.record_pending(SRC, "s3", at=at(3))  # the holder's lock was never touched


async def test_read_only_needs_an_existing_database(backend: Backend) -> None:
    path = file_backend(backend)
    with pytest.raises(StateError, match="does not exist"):
        await open_state(backend.url, read_only=True)
    assert not path.exists()


# --- lifetime and the single-writer lock ------------------------------------------------


async def test_data_survives_close_and_reopen(backend: Backend) -> None:
    first = await open_state(backend.url)
    try:
        await first.set_watermark(SRC, at(7))
        await first.record_success(SRC, "s1", manifest_key="k1", at=at(1))
        await first.record_failure(SRC, "s2", error="e", at=at(2), locator="ext-2")
    finally:
        await first.close()

    second = await open_state(backend.url)
    try:
        assert await second.watermark(SRC) == at(7)
        found = await second.get_many(SRC, ["s1", "s2"])
        assert (found["s1"].status, found["s2"].status) == ("archived", "failed")
        failed = await second.get(SRC, "s2")
        assert failed is not None and (failed.locator, failed.attempts) == ("ext-2", 1)
    finally:
        await second.close()


async def test_the_writer_id_is_kept_across_reopens_and_differs_between_states(
    backend: Backend, tmp_path: Path
) -> None:
    first = await open_state(backend.url)
    try:
        writer = await first.writer_id()
        assert len(writer) == 32 and writer == await first.writer_id()
    finally:
        await first.close()
    again = await open_state(backend.url)
    other = await open_state(f"sqlite:///{tmp_path}/other.db")
    try:
        assert await again.writer_id() == writer
        assert await other.writer_id() != writer
    finally:
        await again.close()
        await other.close()


async def test_close_twice_is_harmless_and_later_calls_fail(backend: Backend) -> None:
    opened = await open_state(backend.url)
    await opened.close()
    await opened.close()
    with pytest.raises(StateError, match="closed"):
        await opened.watermark(SRC)


async def test_second_open_in_same_process_is_locked(backend: Backend, state: State) -> None:
    locking_backend(backend)
    with pytest.raises(StateLocked, match=rf"pid {os.getpid()}\b"):
        await open_state(backend.url)
    await state.close()

    reopened = await open_state(backend.url)
    await reopened.close()


async def test_lock_message_names_the_database(backend: Backend, state: State) -> None:
    locking_backend(backend)
    with pytest.raises(StateLocked) as locked:
        await open_state(backend.url)
    message = str(locked.value)
    assert "in use by another archiver process" in message
    if backend.path is not None:
        assert str(backend.path) in message
    assert "\n" not in message


@pytest.fixture
def other_process(backend: Backend) -> Iterator[subprocess.Popen[str]]:
    """A separate Python process holding the state open until its stdin closes."""
    locking_backend(backend)
    script = textwrap.dedent(
        """
        import asyncio, sys
        from archiver.state import open_state

        async def main() -> None:
            state = await open_state(sys.argv[1])
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.read)
            await state.close()

        asyncio.run(main())
        """
    )
    project = str(Path(archiver.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": project}
    with subprocess.Popen(
        [sys.executable, "-c", script, backend.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        try:
            assert process.stdout.readline().strip() == "ready"
            yield process
        finally:
            process.stdin.close()
            process.wait(timeout=30)


async def test_another_process_holding_the_state_locks_us_out(
    backend: Backend, other_process: subprocess.Popen[str]
) -> None:
    with pytest.raises(StateLocked, match=rf"pid {other_process.pid}\b"):
        await open_state(backend.url)


async def test_lock_is_released_when_the_other_process_ends(
    backend: Backend, other_process: subprocess.Popen[str]
) -> None:
    assert other_process.stdin is not None
    other_process.stdin.close()
    assert other_process.wait(timeout=30) == 0

    reopened = await open_state(backend.url)
    await reopened.close()


# --- files (implementations with a local database file) ---------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_owner_only(backend: Backend, state: State) -> None:
    path = file_backend(backend)
    await state.record_success(SRC, "s1", manifest_key="k", at=at(0))

    lock = path.with_name(path.name + ".lock")
    assert mode(path) == 0o600
    assert mode(lock) == 0o600
    for companion in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if companion.exists():
            assert mode(companion) == 0o600, companion
    assert mode(path.parent) == 0o700


async def test_files_are_owner_only_even_with_a_lax_umask(backend: Backend) -> None:
    path = file_backend(backend)
    previous = os.umask(0)
    try:
        opened = await open_state(backend.url)
        try:
            await opened.record_success(SRC, "s1", manifest_key="k", at=at(0))
            for name in (path.name, path.name + ".lock", path.name + "-wal", path.name + "-shm"):
                assert mode(path.with_name(name)) == 0o600, name
        finally:
            await opened.close()
    finally:
        os.umask(previous)


@pytest.mark.parametrize(
    "garbage", [b"not a database at all\n" * 200, b"x", b"SQLite format 3\x00" + b"\xff" * 200]
)
async def test_a_garbage_file_is_a_state_error(backend: Backend, garbage: bytes) -> None:
    path = file_backend(backend)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(garbage)

    with pytest.raises(StateError, match=str(path)) as raised:
        await open_state(backend.url)

    assert not isinstance(raised.value, StateLocked)
    assert raised.value.__cause__ is not None
    path.write_bytes(b"")  # the lock was released: an empty file opens as a new database
    reopened = await open_state(backend.url)
    await reopened.close()


async def test_a_directory_in_the_way_is_a_state_error(backend: Backend) -> None:
    path = file_backend(backend)
    path.mkdir(parents=True)
    with pytest.raises(StateError, match=str(path)):
        await open_state(backend.url)


# --- URLs -------------------------------------------------------------------------------


async def test_relative_sqlite_url_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    opened = await open_state("sqlite:///relative.db")
    try:
        assert opened.description == str(tmp_path / "relative.db")
    finally:
        await opened.close()
    assert (tmp_path / "relative.db").is_file()


async def test_in_memory_sqlite() -> None:
    opened = await open_state("sqlite://:memory:")
    try:
        await opened.record_success(SRC, "s1", manifest_key="k", at=at(0))
        assert list(await opened.get_many(SRC, ["s1"])) == ["s1"]
    finally:
        await opened.close()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://x/y",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/x.db",
        "postgresql://db.example",
        "postgresql://db.example/",
        "postgres://db.example:port/archiver",
        "postgresql://db.example/a/b",
    ],
)
async def test_unusable_urls_are_state_errors(url: str) -> None:
    with pytest.raises(StateError):
        await open_state(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://archiver:hunter2-secret@db.example/archiver",
        "postgresql://archiver@db.example/archiver?password=hunter2-secret",
        "postgresql://archiver@db.example/archiver?sslpassword=hunter2-secret",
        "mysql://archiver:hunter2-secret@db.example/archiver",
    ],
)
async def test_a_password_in_the_url_is_refused_without_being_shown(url: str) -> None:
    with pytest.raises(StateError) as refused:
        await open_state(url)
    assert "hunter2-secret" not in str(refused.value)
    assert "hunter2-secret" not in repr(refused.value)


async def test_concurrent_calls_each_count(state: State) -> None:
    results = await asyncio.gather(
        *(state.record_failure(SRC, "s1", error=f"e{n}", at=at(n)) for n in range(50))
    )
    assert sorted(results) == list(range(1, 51))
    record = await state.get(SRC, "s1")
    assert record is not None and record.attempts == 50


# -- SQLite only: group commit ------------------------------------------------------------


@pytest.fixture
async def busy_sqlite(tmp_path: Path) -> AsyncIterator[tuple[SqliteState, threading.Event]]:
    """A SQLite state whose thread is busy until the event is set: writes queue up."""
    opened = await SqliteState.open(tmp_path / "state.db")
    released = threading.Event()
    opened._executor.submit(released.wait)
    try:
        yield opened, released
    finally:
        released.set()
        await opened.close()


async def queued(state: SqliteState, count: int) -> None:
    while len(state._queued) < count:
        await asyncio.sleep(0)


async def test_sqlite_writes_queued_while_busy_share_one_transaction(
    busy_sqlite: tuple[SqliteState, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, released = busy_sqlite
    batches: list[int] = []
    write_many = Database.write_many

    def recording(database: Database, writes: list[tuple[str, dict[str, object]]]) -> Any:
        batches.append(len(writes))
        return write_many(database, writes)

    monkeypatch.setattr(Database, "write_many", recording)
    writes = asyncio.gather(
        *(state.record_success(SRC, f"s{n}", manifest_key=f"k{n}", at=at(n)) for n in range(50)),
        state.record_pending(SRC, "p", at=at(0)),
        state.set_watermark(SRC, at(9)),
    )
    await queued(state, 52)
    released.set()
    await writes

    assert batches == [52]
    found = await state.get_many(SRC, [f"s{n}" for n in range(50)])
    assert len(found) == 50 and {record.status for record in found.values()} == {"archived"}
    assert await state.watermark(SRC) == at(9)
    assert [record.session_id for record in await state.pending(SRC)] == ["p"]


async def test_sqlite_a_bad_write_fails_alone_in_its_transaction(
    busy_sqlite: tuple[SqliteState, threading.Event],
) -> None:
    state, released = busy_sqlite
    # An archived row without a manifest key breaks the table's check constraint.
    bad = state.record_success(SRC, "bad", manifest_key=None, at=at(0))  # type: ignore[arg-type]
    writes = asyncio.gather(
        state.record_success(SRC, "s1", manifest_key="k1", at=at(1)),
        bad,
        state.record_success(SRC, "s2", manifest_key="k2", at=at(2)),
        return_exceptions=True,
    )
    await queued(state, 3)
    released.set()
    first, failed, second = await writes

    assert (first, second) == (None, None)
    assert isinstance(failed, StateError) and "CHECK constraint failed" in str(failed)
    assert set(await state.get_many(SRC, ["s1", "bad", "s2"])) == {"s1", "s2"}


async def test_sqlite_a_write_cancelled_before_its_commit_is_not_made(
    busy_sqlite: tuple[SqliteState, threading.Event],
) -> None:
    state, released = busy_sqlite
    cancelled = asyncio.ensure_future(state.record_success(SRC, "s1", manifest_key="k", at=at(0)))
    await queued(state, 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    released.set()
    await state.record_success(SRC, "s2", manifest_key="k", at=at(1))
    assert list(await state.get_many(SRC, ["s1", "s2"])) == ["s2"]


# --- schema migrations ------------------------------------------------------------------


async def test_a_database_of_every_older_schema_is_migrated_keeping_its_rows(
    tmp_path: Path,
) -> None:
    from archiver.state.sqlite_db import MIGRATIONS, SCHEMA_VERSION

    for version in range(1, SCHEMA_VERSION):
        path = tmp_path / f"v{version}.db"
        with sqlite3.connect(path) as old:
            for migration in MIGRATIONS[:version]:
                for statement in migration:
                    old.execute(statement)
            old.execute(
                "INSERT INTO sessions (source, session_id, status, first_seen, updated_at,"
                " manifest_key) VALUES ('perfecto', 's1', 'archived', 1, 2, 'k')"
            )
            old.execute(f"PRAGMA user_version = {version}")
        old.close()

        state = await open_state(f"sqlite:///{path}")
        try:
            summary = await state.summary(SRC, archived_since=datetime(1970, 1, 1, tzinfo=UTC))
            assert (summary.archived, summary.archived_recently) == (1, 1)
            assert len(await state.writer_id()) == 32
        finally:
            await state.close()
        with sqlite3.connect(path) as migrated:
            assert migrated.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        migrated.close()


async def test_read_only_refuses_a_schema_it_does_not_read(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("PRAGMA user_version = 1")
    old.close()

    with pytest.raises(StateError, match=r"schema version 1.*start the daemon once"):
        await open_state(f"sqlite:///{path}", read_only=True)


# --- shared states (PostgreSQL): replicas, migrations, passwords ---------------------------

REPLICA_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from archiver.state import open_state

    async def main() -> None:
        state = await open_state(sys.argv[1], replica=sys.argv[2])
        try:
            print(await state.writer_id(), flush=True)
        finally:
            await state.close()

    asyncio.run(main())
    """
)


def schema_versions(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [int(row[0]) for row in rows]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_shared_state_opens_twice_at_once(backend: Backend, state: State) -> None:
    if not backend.shared:
        pytest.skip(f"{backend.name} is opened by one process at a time")
    other = await open_state(backend.url)
    try:
        await state.record_success(SRC, "s1", manifest_key="k1", at=at(1))
        assert (await other.counts(SRC))["archived"] == 1
    finally:
        await other.close()


async def test_postgres_replicas_share_the_state_with_writer_ids_of_their_own(
    postgres_url: str,
) -> None:
    first = await open_state(postgres_url, replica="archiver-1")
    second = await open_state(postgres_url, replica="archiver-2")
    try:
        await first.record_success(SRC, "s1", manifest_key="k1", at=at(1))
        await second.record_failure(SRC, "s2", error="e", at=at(2))
        await second.set_watermark(SRC, at(3))
        assert (await second.get_many(SRC, ["s1"]))["s1"].manifest_key == "k1"
        assert await first.counts(SRC) == {"archived": 1, "failed": 1, "pending": 0}
        assert await first.watermark(SRC) == at(3)
        assert await first.record_failure(SRC, "s2", error="e", at=at(4)) == 2

        writers = [await first.writer_id(), await second.writer_id()]
        assert all(re.fullmatch(r"[0-9a-f]{32}", writer) for writer in writers)
        assert writers[0] != writers[1]
    finally:
        await first.close()
        await second.close()

    again = await open_state(postgres_url, replica="archiver-1")
    reader = await open_state(postgres_url, replica="archiver-2", read_only=True)
    try:
        assert await again.writer_id() == writers[0]
        assert await reader.writer_id() == writers[1]
    finally:
        await again.close()
        await reader.close()


async def test_postgres_the_default_replica_is_the_host_name(postgres_url: str) -> None:
    opened = await open_state(postgres_url)
    named = await open_state(postgres_url, replica=socket.gethostname())
    try:
        assert await opened.writer_id() == await named.writer_id()
    finally:
        await opened.close()
        await named.close()


async def test_postgres_a_read_only_replica_never_seen_has_no_writer_id(postgres_url: str) -> None:
    writer = await open_state(postgres_url, replica="archiver-1")
    await writer.close()
    reader = await open_state(postgres_url, replica="unknown", read_only=True)
    try:
        with pytest.raises(StateError, match="no writer id for replica 'unknown'"):
            await reader.writer_id()
    finally:
        await reader.close()


async def test_postgres_replicas_starting_at_once_migrate_once(postgres_url: str) -> None:
    from archiver.state.postgres import SCHEMA_VERSION

    opened = await asyncio.gather(*(open_state(postgres_url, replica=f"r{n}") for n in range(6)))
    try:
        writers = {await each.writer_id() for each in opened}
        assert len(writers) == 6
    finally:
        for each in opened:
            await each.close()
    assert schema_versions(postgres_url) == list(range(1, SCHEMA_VERSION + 1))


async def test_postgres_processes_starting_at_once_migrate_once(postgres_url: str) -> None:
    from archiver.state.postgres import SCHEMA_VERSION

    project = str(Path(archiver.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": project}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA_SCRIPT, postgres_url, f"replica-{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(4)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]

    assert [process.returncode for process in processes] == [0] * 4, outputs
    writers = {stdout.strip() for stdout, _ in outputs}
    assert len(writers) == 4 and all(re.fullmatch(r"[0-9a-f]{32}", w) for w in writers)
    assert schema_versions(postgres_url) == list(range(1, SCHEMA_VERSION + 1))


async def test_postgres_a_refused_connection_names_host_and_database_not_the_password() -> None:
    port = closed_port()
    url = f"postgresql://archiver@127.0.0.1:{port}/evidence_state?sslmode=disable"

    with pytest.raises(StateError) as refused:
        await open_state(url, password="hunter2-secret")

    message = str(refused.value)
    assert f"127.0.0.1:{port}/evidence_state" in message
    assert "cannot connect" in message
    assert "hunter2-secret" not in message and "hunter2-secret" not in repr(refused.value)
    assert "\n" not in message
    assert refused.value.__cause__ is None


async def test_postgres_the_password_is_never_shown(postgres_url: str) -> None:
    import psycopg

    opened = await open_state(postgres_url, password="hunter2-secret", replica="r1")
    try:
        assert "hunter2-secret" not in repr(opened)
        assert "hunter2-secret" not in opened.description
        assert "hunter2-secret" not in repr(vars(opened).get("_pool"))
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("DROP TABLE sessions")
        with pytest.raises(StateError) as failed:
            await opened.get(SRC, "s1")
        assert "sessions" in str(failed.value)
        assert "hunter2-secret" not in str(failed.value)
    finally:
        await opened.close()


async def test_postgres_read_only_needs_the_schema_and_changes_nothing(postgres_url: str) -> None:
    import psycopg

    with pytest.raises(StateError, match="has not run with this state yet"):
        await open_state(postgres_url, read_only=True)
    with psycopg.connect(postgres_url) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)


async def test_postgres_read_only_sessions_refuse_writes_in_the_database(
    postgres_url: str,
) -> None:
    from archiver.state.postgres import PostgresState

    writer = await open_state(postgres_url)
    await writer.close()
    reader = await PostgresState.open(postgres_url, read_only=True)
    try:
        with pytest.raises(StateError, match="read-only"):
            await reader.set_watermark(SRC, at(0))
        async with reader._connection() as connection:  # past the state's own refusal
            with pytest.raises(psycopg_errors().ReadOnlySqlTransaction):
                await connection.execute("DELETE FROM watermarks")
    finally:
        await reader.close()


def psycopg_errors() -> Any:
    import psycopg

    return psycopg.errors


async def test_postgres_a_newer_schema_is_refused(postgres_url: str) -> None:
    import psycopg

    writer = await open_state(postgres_url)
    await writer.close()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("INSERT INTO schema_migrations (version) VALUES (99)")

    for read_only in (False, True):
        with pytest.raises(StateError, match=r"schema version 99.*upgrade archiver"):
            await open_state(postgres_url, read_only=read_only)
