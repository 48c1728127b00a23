"""The ledger over every store: appends chain, concurrent appenders never fork the chain."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.errors import StoreError
from archiver.ledger import (
    GENESIS_SHA256,
    Ledger,
    LedgerEntry,
    LedgerRecord,
    entry_key,
    sha256_hex,
)
from archiver.manifest import Manifest
from archiver.store import Store, open_store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


async def append(ledger: Ledger, name: str) -> LedgerRecord:
    return await ledger.append(
        source="src",
        session_id=name,
        manifest_key=f"src/{name}/manifest.json",
        manifest_sha256=sha256_hex(name.encode()),
        previous_manifest_key=None,
    )


async def assert_one_unbroken_chain(store: Store, expected: int) -> list[LedgerEntry]:
    keys = [key async for key in store.list_keys("ledger/")]
    assert keys == [entry_key(seq) for seq in range(expected)]
    entries, previous = [], GENESIS_SHA256
    for seq, key in enumerate(keys):
        data = await store.read_bytes(key)
        entry = LedgerEntry.from_bytes(data)
        assert entry.seq == seq
        assert entry.previous_entry_sha256 == previous, f"chain forks at {key}"
        previous = sha256_hex(data)
        entries.append(entry)
    return entries


async def test_appends_form_a_hash_chain(store: Store) -> None:
    ledger = Ledger(store, clock=clock)
    written = [await append(ledger, f"s{number}") for number in range(5)]
    entries = await assert_one_unbroken_chain(store, 5)
    assert [entry.records for entry in entries] == [(record,) for record in written]
    assert entries[3].records[0].manifest_key == "src/s3/manifest.json"
    assert entries[3].recorded_at == "2026-11-20T12:00:00.000Z"


async def test_appends_made_while_an_entry_is_written_share_the_next_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_put = store.put_bytes_if_absent

    async def put_taking_a_while(key: str, data: bytes, *, content_type: str | None = None) -> bool:
        await asyncio.sleep(0.01)  # the memory store's writes would take no time at all
        return await real_put(key, data, content_type=content_type)

    monkeypatch.setattr(store, "put_bytes_if_absent", put_taking_a_while)
    ledger = Ledger(store, clock=clock)
    records = await asyncio.gather(*(append(ledger, f"s{number}") for number in range(40)))

    entries = await assert_one_unbroken_chain(store, len({record.seq for record in records}))
    assert 1 < len(entries) < 40  # the first waits for nobody; the rest queue behind it
    stored = [record for entry in entries for record in entry.records]
    assert sorted(stored, key=lambda record: record.session_id) == sorted(
        records, key=lambda record: record.session_id
    )
    assert len({record.session_id for record in stored}) == 40


async def test_a_failed_entry_fails_its_writer_and_the_others_wait_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(store, clock=clock)
    real_put = store.put_bytes_if_absent
    failures = [entry_key(2)]

    async def put_failing_once(key: str, data: bytes, *, content_type: str | None = None) -> bool:
        await asyncio.sleep(0)  # the other appends queue meanwhile
        if key in failures:
            failures.remove(key)
            raise StoreError("injected")
        return await real_put(key, data, content_type=content_type)

    monkeypatch.setattr(store, "put_bytes_if_absent", put_failing_once)
    await append(ledger, "first")
    # s0 writes entry 1 alone; s1 then writes s1..s5 as entry 2, which fails.
    outcomes = await asyncio.gather(
        *(append(ledger, f"s{number}") for number in range(6)), return_exceptions=True
    )

    assert [type(outcome) for outcome in outcomes][:2] == [LedgerRecord, StoreError]
    assert all(isinstance(outcome, LedgerRecord) for outcome in outcomes[2:])
    count = len([key async for key in store.list_keys("ledger/")])
    entries = await assert_one_unbroken_chain(store, count)
    assert [sorted(record.session_id for record in entry.records) for entry in entries] == [
        ["first"],
        ["s0"],
        ["s2", "s3", "s4", "s5"],
    ]


async def test_concurrent_appenders_never_fork_the_chain(store: Store) -> None:
    # Separate Ledger objects stand for separate processes: none knows what the others wrote.
    ledgers = [Ledger(store, clock=clock) for _ in range(4)]

    async def writer(number: int, ledger: Ledger) -> None:
        for item in range(6):
            await append(ledger, f"w{number}-{item}")

    async with asyncio.TaskGroup() as group:
        for number, ledger in enumerate(ledgers):
            group.create_task(writer(number, ledger))

    entries = await assert_one_unbroken_chain(store, 24)
    assert len({record.session_id for entry in entries for record in entry.records}) == 24


async def test_a_fresh_process_finds_the_end_of_the_chain(store: Store) -> None:
    assert await Ledger(store, clock=clock).next_seq() == 0
    first = Ledger(store, clock=clock)
    for number in range(37):
        await append(first, f"s{number}")
    second = Ledger(store, clock=clock)
    assert await second.next_seq() == 37
    assert (await append(second, "late")).seq == 37
    await assert_one_unbroken_chain(store, 38)


async def test_find_latest_and_ensure_recorded(store: Store) -> None:
    ledger = Ledger(store, clock=clock)
    for number in range(3):
        await append(ledger, f"s{number}")
    found = await ledger.find_latest("src/s1/manifest.json", not_before=NOW)
    assert found is not None and found.seq == 1
    assert await ledger.find_latest("src/zz/manifest.json", not_before=NOW) is None

    manifest = Manifest(
        source="src",
        session_id="new",
        archived_at=NOW,
        archiver_version="test",
        session={},
        artifacts=(),
        previous_manifest="p/h.json",
    ).to_bytes()
    recorded = await ledger.ensure_recorded(
        source="src", session_id="new", manifest_key="src/new/manifest.json", manifest=manifest
    )
    assert recorded.seq == 3 and recorded.previous_manifest_key == "p/h.json"
    again = await Ledger(store, clock=clock).ensure_recorded(
        source="src", session_id="new", manifest_key="src/new/manifest.json", manifest=manifest
    )
    assert again == recorded
    await assert_one_unbroken_chain(store, 4)


async def test_backwards_search_stops_before_the_manifest_was_archived(store: Store) -> None:
    times = [NOW - timedelta(days=10), NOW]
    ledger = Ledger(store, clock=lambda: times[0])
    await append(ledger, "old")
    await append(ledger, "filler")
    times[0] = NOW
    await append(ledger, "recent")
    # "filler" was recorded long before NOW: the search ends there, before reaching "old".
    assert await ledger.find_latest("src/old/manifest.json", not_before=NOW) is None
    found = await ledger.find_latest("src/old/manifest.json", not_before=NOW - timedelta(days=11))
    assert found is not None and found.seq == 0


APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from archiver.ledger import Ledger
    from archiver.store import open_store

    async def main(root, name, count):
        store = open_store(f"file://{root}")
        ledger = Ledger(store, clock=lambda: datetime.now(UTC))
        for item in range(count):
            await ledger.append(
                source="src", session_id=f"{name}-{item}",
                manifest_key=f"src/{name}-{item}/manifest.json",
                manifest_sha256="0" * 64, previous_manifest_key=None,
            )

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_separate_processes_share_one_chain_on_the_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "root"
    processes = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(root), f"p{number}", "15"])
        for number in range(3)
    ]
    for process in processes:
        assert await asyncio.to_thread(process.wait, 120) == 0
    store = open_store(f"file://{root}")
    entries = await assert_one_unbroken_chain(store, 45)
    assert len({record.session_id for entry in entries for record in entry.records}) == 45
