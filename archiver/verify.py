"""``archiver verify``: prove the evidence is complete and unaltered, or say what is not.

Three checks, all read-only:

1. **The ledger** (:mod:`archiver.ledger`): entries ``0..n`` are all there, each parses, and
   each one's ``previous_entry_sha256`` is the SHA-256 of the entry before it. A missing
   number, an unreadable entry or a hash that does not match breaks the chain and is reported.
   On a versioned bucket an entry is its key's oldest version, and a key with more than one
   version is reported (``ledger_entry_versions``).
2. **Every manifest** of every session checked: the current ``manifest.json`` must have the
   SHA-256 of the newest ledger entry for its key; each copy a re-archive kept under
   ``history/`` (named by the next entry's ``previous_manifest_key``) must have the hash of
   the entry before. A manifest no entry records, or one whose entry names a hash it no longer
   has, is reported; so is a manifest the ledger records but the store no longer holds.
3. **Every object every manifest lists** is read back in chunks (memory does not grow with
   its size), at most ``concurrency`` at once, and its size and SHA-256 compared with the
   manifest. Objects missing or different are reported, and so are objects in a session's
   folder that no manifest lists (``unlisted``), and objects the server says lack the
   encryption, retention or legal hold the store is configured to give (``unprotected``).
   Objects a writer left in a claim generation that another writer's manifest superseded
   (:mod:`archiver.claims`: the writer died, or stalled past its lease, and the session was
   archived by another) are not evidence and no problem: they are counted and named as
   ``abandoned``.

The ledger is always checked whole; ``Selection`` narrows the sessions checked (a source,
some ids, or those archived since a date). The report ends with the ledger's head (last
number and its SHA-256): noting it somewhere else lets a later run prove that no entry was
rewritten since, ``--anchor SEQ:SHA256`` checks exactly that.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from archiver.claims import ATTEMPTS, GENERATION_DIGITS, claim_generation, is_claim_key
from archiver.errors import StoreError
from archiver.keys import safe_key, safe_segment
from archiver.ledger import (
    GENESIS_SHA256,
    LEDGER_PREFIX,
    LedgerEntry,
    LedgerRecord,
    entry_key,
    entry_seq,
    parse_rfc3339,
    sha256_hex,
)
from archiver.manifest import Manifest, ManifestError, decode_manifest
from archiver.store import Store

MANIFEST = "manifest.json"
HISTORY = "history/"

# The kinds of problem, as they appear in reports.
MISSING = "missing"  # an object a manifest lists is not in the store
ALTERED = "altered"  # an object's size or SHA-256 differs from its manifest
UNLISTED = "unlisted"  # an object in a session's folder that no manifest lists
UNREADABLE = "unreadable"  # the store failed to read an object
MANIFEST_MISSING = "manifest_missing"  # the ledger records a manifest the store lacks
MANIFEST_ALTERED = "manifest_altered"  # a manifest's SHA-256 differs from its ledger entry
MANIFEST_UNRECORDED = "manifest_unrecorded"  # no ledger entry records this manifest
MANIFEST_INVALID = "manifest_invalid"  # a manifest that is not one, or of a newer version
LEDGER_ENTRY_MISSING = "ledger_entry_missing"  # a number missing from the chain
LEDGER_ENTRY_ALTERED = "ledger_entry_altered"  # an entry that does not chain or parse
LEDGER_ENTRY_VERSIONS = "ledger_entry_versions"  # a ledger key with more than one version
UNPROTECTED = "unprotected"  # an object lacks encryption, retention or hold the store asks for
LEDGER_ANCHOR_MISMATCH = "ledger_anchor_mismatch"  # the entry given by --anchor differs


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    key: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "key": self.key, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which sessions to check; the default is all of them."""

    source: str | None = None
    session_ids: tuple[str, ...] = ()
    since: datetime | None = None
    anchor: tuple[int, str] | None = None


@dataclass(slots=True)
class VerifyReport:
    sessions: int = 0
    manifests: int = 0
    objects: int = 0
    bytes: int = 0
    ledger_entries: int = 0
    ledger_head: tuple[int, str] | None = None
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    """Objects of a claim generation that another writer's manifest superseded."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, key: str, detail: str) -> None:
        self.problems.append(Problem(kind, key, detail))

    def to_json(self) -> dict[str, Any]:
        head = self.ledger_head
        return {
            "ok": self.ok,
            "sessions": self.sessions,
            "manifests": self.manifests,
            "objects": self.objects,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "ledger": {
                "entries": self.ledger_entries,
                "head_seq": head[0] if head else None,
                "head_sha256": head[1] if head else None,
            },
            "problems": [problem.to_json() for problem in self.problems],
            "abandoned": list(self.abandoned),
        }


def _generation(folder: str, key: str) -> int | None:
    """The claim generation whose objects ``key`` is among, if it is one's."""
    rest = key.removeprefix(f"{folder}/")
    if rest.startswith(ATTEMPTS):
        number = rest.removeprefix(ATTEMPTS).partition("/")[0]
        return int(number) if len(number) == GENERATION_DIGITS and number.isdigit() else None
    first = rest.partition("/")[0]
    if first in ("history", "rearchived") or rest == MANIFEST:
        return None  # a re-archive's or the session's own, not a generation's
    return 0


@dataclass(frozen=True, slots=True)
class _ObjectCheck:
    key: str
    size: int
    sha256: str
    manifest_key: str


ProgressCallback = Callable[[int, int, int, int], None]
"""Called as objects are checked: (objects done, bytes done, objects total, bytes total)."""


class Verifier:
    def __init__(
        self,
        store: Store,
        *,
        concurrency: int = 8,
        progress: ProgressCallback | None = None,
    ) -> None:
        self._store = store
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._progress = progress

    async def run(self, selection: Selection = Selection()) -> VerifyReport:
        started = time.monotonic()
        report = VerifyReport()
        entries = await self._check_ledger(report, selection.anchor)
        folders = await self._session_folders(selection, entries)
        checks: dict[tuple[str, int, str], _ObjectCheck] = {}
        sessions = sorted(folders.items())

        async def plan(folder: str, keys: set[str]) -> None:
            async with self._slots:
                found = await self._plan_session(folder, keys, entries, selection, report)
            for check in found:
                checks.setdefault((check.key, check.size, check.sha256), check)

        async with asyncio.TaskGroup() as group:
            for folder, keys in sessions:
                group.create_task(plan(folder, keys), name=f"verify-plan-{folder}")
        await self._check_objects(list(checks.values()), report)
        report.problems.sort(key=lambda problem: (problem.key, problem.kind))
        report.seconds = time.monotonic() - started
        return report

    # -- the ledger -----------------------------------------------------------------------

    async def _check_ledger(
        self, report: VerifyReport, anchor: tuple[int, str] | None
    ) -> dict[str, list[LedgerRecord]]:
        stored: dict[int, bytes] = {}

        async def read(seq: int, key: str) -> None:
            async with self._slots:
                try:
                    stored[seq] = await self._store.read_created(key)
                except StoreError as error:
                    report.add(UNREADABLE, key, str(error))
                    return
                await self._check_protection(key, report)

        for key, count in (await self._store.extra_versions(LEDGER_PREFIX)).items():
            report.add(
                LEDGER_ENTRY_VERSIONS,
                key,
                f"{count} versions: the oldest is the entry; a newer one was written over it "
                "(by a writer that lost the race for this number on a server that ignores "
                "conditional writes, or by someone else)",
            )
        async with asyncio.TaskGroup() as group:
            async for key in self._store.list_keys(LEDGER_PREFIX):
                seq = entry_seq(key)
                if seq is None:
                    report.add(UNLISTED, key, "not a ledger entry, in the ledger's folder")
                    continue
                group.create_task(read(seq, key), name=f"verify-ledger-{seq}")

        by_manifest: dict[str, list[LedgerRecord]] = defaultdict(list)
        last = max(stored, default=-1)
        previous_sha: str | None = GENESIS_SHA256
        for seq in range(last + 1):
            key = entry_key(seq)
            data = stored.get(seq)
            if data is None:
                report.add(LEDGER_ENTRY_MISSING, key, f"entry {seq} is missing: the chain breaks")
                previous_sha = None
                continue
            digest = sha256_hex(data)
            try:
                entry = LedgerEntry.from_bytes(data)
            except ValueError as exc:
                report.add(LEDGER_ENTRY_ALTERED, key, str(exc))
                previous_sha = digest
                continue
            if entry.seq != seq:
                report.add(LEDGER_ENTRY_ALTERED, key, f"says it is entry {entry.seq}")
            if previous_sha is not None and entry.previous_entry_sha256 != previous_sha:
                report.add(
                    LEDGER_ENTRY_ALTERED,
                    entry_key(seq - 1) if seq else key,
                    f"entry {seq} recorded a different SHA-256 of entry {seq - 1}: "
                    f"entry {seq - 1} was changed or entry {seq} rewritten",
                )
            previous_sha = digest
            for record in entry.records:
                by_manifest[record.manifest_key].append(record)
        report.ledger_entries = len(stored)
        if last >= 0 and last in stored:
            report.ledger_head = (last, sha256_hex(stored[last]))
        if anchor is not None:
            seq, expected = anchor
            actual = sha256_hex(stored[seq]) if seq in stored else None
            if actual != expected.lower():
                report.add(
                    LEDGER_ANCHOR_MISMATCH,
                    entry_key(seq),
                    f"SHA-256 is {actual or 'absent'}, the anchor says {expected}",
                )
        return by_manifest

    # -- sessions -------------------------------------------------------------------------

    async def _session_folders(
        self, selection: Selection, entries: dict[str, list[LedgerRecord]]
    ) -> dict[str, set[str]]:
        """``{source}/{session}`` folders to check, each with the keys stored under it."""
        if selection.session_ids:
            if selection.source is None:
                raise ValueError("session ids need a source")
            source = selection.source
            wanted = {safe_key(source, session_id) for session_id in selection.session_ids}
            prefixes = [f"{folder}/" for folder in sorted(wanted)]
        else:
            wanted = None
            prefixes = [f"{safe_segment(selection.source)}/" if selection.source else ""]
        folders: dict[str, set[str]] = {} if wanted is None else {name: set() for name in wanted}
        for prefix in prefixes:
            async for key in self._store.list_keys(prefix):
                if key.startswith(LEDGER_PREFIX):
                    continue
                parts = key.split("/")
                folder = "/".join(parts[:2]) if len(parts) > 2 else key
                folders.setdefault(folder, set()).add(key)
        for manifest_key in entries:
            folder = manifest_key.removesuffix(f"/{MANIFEST}")
            in_prefix = any(f"{folder}/".startswith(prefix) for prefix in prefixes)
            if in_prefix and (wanted is None or folder in wanted):
                folders.setdefault(folder, set())
        return folders

    async def _plan_session(
        self,
        folder: str,
        keys: set[str],
        entries: dict[str, list[LedgerRecord]],
        selection: Selection,
        report: VerifyReport,
    ) -> list[_ObjectCheck]:
        if folder in keys:  # a stray object beside the session folders
            report.add(UNLISTED, folder, "not inside a session folder")
            return []
        current = f"{folder}/{MANIFEST}"
        recorded = _distinct(entries.get(current, []))
        expected: dict[str, LedgerRecord] = {}
        if recorded:
            expected[current] = recorded[-1]
            for before, after in itertools.pairwise(recorded):
                if after.previous_manifest_key:
                    expected[after.previous_manifest_key] = before
        history = {key for key in keys if key.startswith(f"{folder}/{HISTORY}")}
        manifest_keys = sorted({current, *history, *expected} - {""})
        documents: dict[str, Manifest] = {}
        problems: list[Problem] = []
        for manifest_key in manifest_keys:
            document = await self._check_manifest(
                manifest_key, manifest_key in keys, expected.get(manifest_key), problems
            )
            if document is not None:
                documents[manifest_key] = document
                await self._check_protection(manifest_key, report)
        if selection.since is not None and not _touched_since(
            documents.get(current), recorded, selection.since
        ):
            return []
        report.sessions += 1
        report.manifests += len(documents)
        report.problems.extend(problems)
        checks: list[_ObjectCheck] = []
        listed = set(manifest_keys)
        for manifest_key, document in documents.items():
            for artifact in _artifacts(manifest_key, document):
                listed.add(artifact.key)
                if artifact.key in keys or await self._store.exists(artifact.key):
                    checks.append(artifact)
                else:
                    report.add(MISSING, artifact.key, f"listed in {manifest_key}, not in the store")
        claimed = {claim_generation(folder, key) for key in keys} - {None}
        superseded = claimed - {_generation(folder, key) for key in listed}
        for key in sorted(keys - listed):
            if is_claim_key(folder, key):  # who claimed the session: not evidence
                continue
            if _generation(folder, key) in superseded:
                report.abandoned.append(key)
            else:
                report.add(UNLISTED, key, "in the session's folder, but no manifest lists it")
        return checks

    async def _check_manifest(
        self,
        key: str,
        present: bool,
        entry: LedgerRecord | None,
        problems: list[Problem],
    ) -> Manifest | None:
        if not present:
            if entry is not None:
                problems.append(
                    Problem(MANIFEST_MISSING, key, f"recorded in ledger entry {entry.seq}, gone")
                )
            return None
        try:
            data = await self._store.read_bytes(key)
        except StoreError as error:
            problems.append(Problem(UNREADABLE, key, str(error)))
            return None
        digest = sha256_hex(data)
        if entry is None:
            problems.append(Problem(MANIFEST_UNRECORDED, key, "no ledger entry records it"))
        elif digest != entry.manifest_sha256:
            problems.append(
                Problem(
                    MANIFEST_ALTERED,
                    key,
                    f"SHA-256 {digest}, ledger entry {entry.seq} recorded {entry.manifest_sha256}",
                )
            )
        try:
            return decode_manifest(data, key=key)
        except ManifestError as error:
            detail = error.detail if error.too_new else f"not a manifest: {error.detail}"
            problems.append(Problem(MANIFEST_INVALID, key, detail))
            return None

    # -- objects --------------------------------------------------------------------------

    async def _check_objects(self, checks: list[_ObjectCheck], report: VerifyReport) -> None:
        total_bytes = sum(check.size for check in checks)
        done = [0, 0]
        if self._progress:
            self._progress(0, 0, len(checks), total_bytes)

        async def check_one(check: _ObjectCheck) -> None:
            async with self._slots:
                size, digest = await self._hash(check, report)
            done[0] += 1
            done[1] += check.size
            report.objects += 1
            report.bytes += size
            if digest is not None and (size, digest) != (check.size, check.sha256):
                report.add(
                    ALTERED,
                    check.key,
                    f"{size} bytes with SHA-256 {digest}; {check.manifest_key} lists "
                    f"{check.size} bytes with SHA-256 {check.sha256}",
                )
            if digest is not None:
                await self._check_protection(check.key, report)
            if self._progress:
                self._progress(done[0], done[1], len(checks), total_bytes)

        async with asyncio.TaskGroup() as group:
            for check in checks:
                group.create_task(check_one(check), name=f"verify-{check.key}")

    async def _check_protection(self, key: str, report: VerifyReport) -> None:
        """What the server says ``key`` lacks of the encryption, retention and hold the store
        is configured to give (artifacts, manifests and ledger entries alike)."""
        try:
            unmet = await self._store.unkept_promises(key)
        except StoreError as error:
            report.add(UNREADABLE, key, str(error))
            return
        for promise in unmet:
            report.add(UNPROTECTED, key, promise)

    async def _hash(self, check: _ObjectCheck, report: VerifyReport) -> tuple[int, str | None]:
        hasher = hashlib.sha256()
        size = 0
        try:
            async for chunk in self._store.iter_bytes(check.key):
                hasher.update(chunk)
                size += len(chunk)
        except StoreError as error:
            if await _absent(self._store, check.key):
                report.add(MISSING, check.key, f"listed in {check.manifest_key}, not in the store")
            else:
                report.add(UNREADABLE, check.key, str(error))
            return size, None
        return size, hasher.hexdigest()


def _distinct(entries: list[LedgerRecord]) -> list[LedgerRecord]:
    """Entries for one manifest key, a repeated record of the same bytes counted once."""
    kept: list[LedgerRecord] = []
    for entry in entries:
        if kept and kept[-1].manifest_sha256 == entry.manifest_sha256:
            continue
        kept.append(entry)
    return kept


def _artifacts(manifest_key: str, manifest: Manifest) -> list[_ObjectCheck]:
    return [
        _ObjectCheck(artifact.key, artifact.size, artifact.sha256, manifest_key)
        for artifact in manifest.artifacts
    ]


def _touched_since(
    manifest: Manifest | None, recorded: list[LedgerRecord], since: datetime
) -> bool:
    try:
        moments = [parse_rfc3339(entry.recorded_at) for entry in recorded]
    except ValueError:
        return True
    if manifest is not None:
        moments.append(manifest.archived_at)
    if not moments:
        return True  # nothing says when: check it
    return any(moment >= since for moment in moments)


async def _absent(store: Store, key: str) -> bool:
    try:
        return not await store.exists(key)
    except StoreError:
        return False
