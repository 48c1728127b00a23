"""verify: every kind of damage is found, on the filesystem and memory stores.

Evidence is written the way the engine writes it (artifacts, manifest, ledger entry; a
re-archive keeps the old manifest under history/), then damaged by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.ledger import Ledger, entry_key
from archiver.manifest import Manifest, StoredArtifact
from archiver.store import Store
from archiver.store.filesystem import FilesystemStore
from archiver.store.memory import MemoryStore
from archiver.verify import (
    ALTERED,
    LEDGER_ANCHOR_MISMATCH,
    LEDGER_ENTRY_ALTERED,
    LEDGER_ENTRY_MISSING,
    MANIFEST_ALTERED,
    MANIFEST_INVALID,
    MANIFEST_MISSING,
    MANIFEST_UNRECORDED,
    MISSING,
    UNLISTED,
    Selection,
    Verifier,
    VerifyReport,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MIB = 1024 * 1024


@pytest.fixture(params=["filesystem", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store = (
        FilesystemStore(tmp_path / "root") if request.param == "filesystem" else (MemoryStore())
    )
    yield opened
    await opened.close()


async def delete(store: Store, key: str) -> None:
    if isinstance(store, MemoryStore):
        del store.objects[key]
    else:
        assert isinstance(store, FilesystemStore)
        root = Path(store.description.removeprefix("file://"))
        (root / key).unlink()


async def archive(
    store: Store,
    ledger: Ledger,
    session_id: str,
    files: dict[str, bytes],
    *,
    at: datetime = NOW,
    rearchive: bool = False,
) -> str:
    """Store a session as the engine does; returns its manifest key."""
    folder = f"perfecto/{session_id}"
    manifest_key = f"{folder}/manifest.json"
    stamp = at.strftime("%Y%m%dT%H%M%S000Z")
    base = f"{folder}/rearchived/{stamp}" if rearchive else folder
    stored = []
    for name, data in files.items():
        key = f"{base}/{name}"
        await store.put_bytes(key, data)
        stored.append(
            StoredArtifact(
                key=key,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                kind="video",
                content_type=None,
                source_url=None,
            )
        )
    history_key = None
    if rearchive:
        history_key = f"{folder}/history/{stamp}-manifest.json"
        await store.put_bytes(history_key, await store.read_bytes(manifest_key))
    manifest = Manifest(
        source="perfecto",
        session_id=session_id,
        archived_at=at,
        archiver_version="test",
        session={"id": session_id},
        artifacts=tuple(stored),
        previous_manifest=history_key,
    )
    data = manifest.to_bytes()
    await store.put_bytes(manifest_key, data)
    await ledger.append(
        source="perfecto",
        session_id=session_id,
        manifest_key=manifest_key,
        manifest_sha256=hashlib.sha256(data).hexdigest(),
        previous_manifest_key=history_key,
    )
    return manifest_key


async def evidence(store: Store) -> Ledger:
    ledger = Ledger(store, clock=lambda: NOW)
    await archive(store, ledger, "s1", {"a.mp4": b"a" * 5000, "log.txt": b"log"})
    await archive(store, ledger, "s2", {"b.mp4": b"b" * 7000})
    await archive(
        store, ledger, "s1", {"a.mp4": b"A" * 6000}, at=NOW + timedelta(days=1), rearchive=True
    )
    await archive(store, ledger, "s3", {"c.mp4": b"c" * 100})
    return ledger


async def verify(store: Store, selection: Selection | None = None) -> VerifyReport:
    return await Verifier(store, concurrency=4).run(selection or Selection())


def kinds(report: VerifyReport) -> set[tuple[str, str]]:
    return {(problem.kind, problem.key) for problem in report.problems}


async def test_untouched_evidence_checks(store: Store) -> None:
    await evidence(store)
    report = await verify(store)
    assert report.ok, report.problems
    assert report.sessions == 3
    assert report.manifests == 4  # s1 has its current manifest and one history copy
    assert report.objects == 5
    assert report.bytes == 5000 + 3 + 7000 + 6000 + 100
    assert report.ledger_entries == 4
    assert report.ledger_head is not None and report.ledger_head[0] == 3


async def test_altered_deleted_and_unlisted_objects(store: Store) -> None:
    await evidence(store)
    await store.put_bytes("perfecto/s1/a.mp4", b"a" * 4999 + b"x")  # same size, other bytes
    await delete(store, "perfecto/s2/b.mp4")
    await store.put_bytes("perfecto/s3/planted.bin", b"not archived by us")

    report = await verify(store)

    assert kinds(report) == {
        (ALTERED, "perfecto/s1/a.mp4"),
        (MISSING, "perfecto/s2/b.mp4"),
        (UNLISTED, "perfecto/s3/planted.bin"),
    }
    assert not report.ok


async def test_altered_current_and_history_manifests(store: Store) -> None:
    await evidence(store)
    history = [key async for key in store.list_keys("perfecto/s1/history/")]
    for key in ("perfecto/s2/manifest.json", history[0]):
        document = json.loads(await store.read_bytes(key))
        document["artifacts"][0]["sha256"] = "0" * 64
        await store.put_bytes(key, json.dumps(document).encode())

    report = await verify(store)

    assert (MANIFEST_ALTERED, "perfecto/s2/manifest.json") in kinds(report)
    assert (MANIFEST_ALTERED, history[0]) in kinds(report)
    # ...and the hash the forger wrote no longer matches the objects either.
    assert (ALTERED, "perfecto/s2/b.mp4") in kinds(report)


async def test_deleted_manifest(store: Store) -> None:
    await evidence(store)
    await delete(store, "perfecto/s3/manifest.json")
    report = await verify(store)
    assert kinds(report) == {
        (MANIFEST_MISSING, "perfecto/s3/manifest.json"),
        (UNLISTED, "perfecto/s3/c.mp4"),
    }


async def test_deleted_ledger_entry(store: Store) -> None:
    await evidence(store)
    await delete(store, entry_key(1))
    report = await verify(store)
    assert kinds(report) == {
        (LEDGER_ENTRY_MISSING, entry_key(1)),
        (MANIFEST_UNRECORDED, "perfecto/s2/manifest.json"),
    }


async def test_deleted_last_ledger_entry(store: Store) -> None:
    await evidence(store)
    await delete(store, entry_key(3))
    assert kinds(await verify(store)) == {(MANIFEST_UNRECORDED, "perfecto/s3/manifest.json")}


async def test_altered_ledger_entry(store: Store) -> None:
    await evidence(store)
    entry = json.loads(await store.read_bytes(entry_key(1)))
    entry["recorded_at"] = "2026-01-01T00:00:00.000Z"  # any change at all
    await store.put_bytes(entry_key(1), json.dumps(entry, indent=2).encode())
    assert kinds(await verify(store)) == {(LEDGER_ENTRY_ALTERED, entry_key(1))}


async def test_forged_entry_and_manifest_together_break_the_chain(store: Store) -> None:
    await evidence(store)
    document = json.loads(await store.read_bytes("perfecto/s2/manifest.json"))
    document["not_archived"] = ["forged"]
    forged = json.dumps(document).encode()
    await store.put_bytes("perfecto/s2/manifest.json", forged)
    entry = json.loads(await store.read_bytes(entry_key(1)))
    entry["manifests"][0]["manifest_sha256"] = hashlib.sha256(forged).hexdigest()
    await store.put_bytes(entry_key(1), json.dumps(entry, indent=2).encode())
    assert kinds(await verify(store)) == {(LEDGER_ENTRY_ALTERED, entry_key(1))}


async def test_anchor_catches_a_rewritten_head(store: Store) -> None:
    await evidence(store)
    head = (await verify(store)).ledger_head
    assert head is not None
    assert (await verify(store, Selection(anchor=head))).ok
    entry = json.loads(await store.read_bytes(entry_key(3)))
    entry["recorded_at"] = "2026-01-01T00:00:00.000Z"
    await store.put_bytes(entry_key(3), json.dumps(entry, indent=2).encode())
    assert kinds(await verify(store, Selection(anchor=head))) == {
        (LEDGER_ANCHOR_MISMATCH, entry_key(3))
    }


async def test_manifest_without_ledger_entry(store: Store) -> None:
    await evidence(store)
    # A manifest stored as if the process died before its ledger entry.
    manifest = Manifest(
        source="perfecto",
        session_id="s9",
        archived_at=NOW,
        archiver_version="test",
        session={"id": "s9"},
        artifacts=(),
    )
    await store.put_bytes("perfecto/s9/manifest.json", manifest.to_bytes())
    assert kinds(await verify(store)) == {(MANIFEST_UNRECORDED, "perfecto/s9/manifest.json")}


async def rewrite_recorded(store: Store, ledger: Ledger, key: str, document: Any) -> None:
    """Store ``document`` as the manifest at ``key`` with a ledger entry of its own, as an
    archiver writing that document would have."""
    data = json.dumps(document, indent=2).encode()
    await store.put_bytes(key, data)
    await ledger.append(
        source="perfecto",
        session_id=key.split("/")[1],
        manifest_key=key,
        manifest_sha256=hashlib.sha256(data).hexdigest(),
        previous_manifest_key=None,
    )


async def test_a_manifest_from_before_manifest_version_still_verifies(store: Store) -> None:
    ledger = await evidence(store)
    key = "perfecto/s2/manifest.json"
    document = json.loads(await store.read_bytes(key))
    assert next(iter(document)) == "manifest_version"
    del document["manifest_version"]
    await rewrite_recorded(store, ledger, key, document)
    report = await verify(store)
    assert report.ok, report.problems
    assert report.objects == 5


async def test_a_manifest_of_a_newer_version_is_reported_not_read(store: Store) -> None:
    ledger = await evidence(store)
    key = "perfecto/s2/manifest.json"
    document = json.loads(await store.read_bytes(key))
    document["manifest_version"] = 2
    document["retention"] = {"until": "2036-11-20"}  # what a newer format might add
    await rewrite_recorded(store, ledger, key, document)
    report = await verify(store)
    invalid = [problem for problem in report.problems if problem.kind == MANIFEST_INVALID]
    assert [problem.key for problem in invalid] == [key]
    assert "written by a newer archiver" in invalid[0].detail
    assert "manifest_version" in invalid[0].detail
    # What it lists cannot be known, so its objects are not taken as checked.
    assert kinds(report) == {(MANIFEST_INVALID, key), (UNLISTED, "perfecto/s2/b.mp4")}
    assert not report.ok


async def test_a_damaged_manifest_is_reported_with_the_field_at_fault(store: Store) -> None:
    ledger = await evidence(store)
    key = "perfecto/s3/manifest.json"
    document = json.loads(await store.read_bytes(key))
    document["artifacts"][0]["size"] = "100"
    await rewrite_recorded(store, ledger, key, document)
    report = await verify(store)
    invalid = [problem for problem in report.problems if problem.kind == MANIFEST_INVALID]
    assert [problem.key for problem in invalid] == [key]
    assert "artifacts[0].size" in invalid[0].detail
    assert kinds(report) == {(MANIFEST_INVALID, key), (UNLISTED, "perfecto/s3/c.mp4")}


async def test_selection_by_id_source_and_date(store: Store) -> None:
    await evidence(store)
    await store.put_bytes("perfecto/s2/b.mp4", b"damaged")

    only_s1 = await verify(store, Selection(source="perfecto", session_ids=("s1",)))
    assert only_s1.ok and only_s1.sessions == 1 and only_s1.objects == 3
    assert not (await verify(store, Selection(source="perfecto", session_ids=("s2",)))).ok
    assert not (await verify(store, Selection(source="perfecto"))).ok
    assert (await verify(store, Selection(source="devrev"))).sessions == 0

    recent = await verify(store, Selection(since=NOW + timedelta(hours=1)))
    assert recent.ok and recent.sessions == 1  # only s1 was archived again since


async def test_memory_stays_flat_for_a_big_object(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    ledger = Ledger(store, clock=lambda: NOW)
    await archive(store, ledger, "big", {"video.mp4": os.urandom(48 * MIB)})

    tracemalloc.start()
    report = await verify(store)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert report.ok and report.bytes == 48 * MIB
    assert peak < 12 * MIB, f"verify held {peak / MIB:.1f} MiB for a 48 MiB object"


async def test_a_superseded_claims_leftovers_are_abandoned_not_problems(store: Store) -> None:
    """Writer A claimed s9 (generation 0), stored part of it and died; writer B took the
    session over (generation 1, under attempts/0001/) and archived it."""
    ledger = Ledger(store, clock=lambda: NOW)
    folder = "perfecto/s9"
    await store.put_bytes(f"{folder}/claims/0000.json", b'{"writer": "a"}\n')
    await store.put_bytes(f"{folder}/video.mp4", b"half a video")
    await store.put_bytes(f"{folder}/logs/device.log", b"log")
    await store.put_bytes(f"{folder}/claims/0001.json", b'{"writer": "b"}\n')
    data = b"the whole video"
    key = f"{folder}/attempts/0001/video.mp4"
    await store.put_bytes(key, data)
    manifest = Manifest(
        source="perfecto",
        session_id="s9",
        archived_at=NOW,
        archiver_version="test",
        session={"id": "s9"},
        artifacts=(
            StoredArtifact(
                key=key,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                kind="video",
                content_type=None,
                source_url=None,
            ),
        ),
    )
    encoded = manifest.to_bytes()
    await store.put_bytes(f"{folder}/manifest.json", encoded)
    await ledger.append(
        source="perfecto",
        session_id="s9",
        manifest_key=f"{folder}/manifest.json",
        manifest_sha256=hashlib.sha256(encoded).hexdigest(),
        previous_manifest_key=None,
    )
    report = await verify(store)
    assert report.ok, report.problems
    assert report.abandoned == [f"{folder}/logs/device.log", f"{folder}/video.mp4"]
    # An object the manifest's own generation holds but does not list is still a problem.
    await store.put_bytes(f"{folder}/attempts/0001/extra.bin", b"?")
    assert kinds(await verify(store)) == {(UNLISTED, f"{folder}/attempts/0001/extra.bin")}
