"""``archiver export``: archived sessions as one BagIt bag, for an auditor.

The sessions are read through the Store seam only (like ``verify`` and ``show``), so the
store may be a folder or a bucket. For each session the current ``manifest.json`` is read
(:func:`~archiver.manifest.decode_manifest`), its ledger record found, and its SHA-256
compared with that record; then every object it lists is streamed from the store into the
bag, hashed on the way, and compared with the manifest. Any difference stops the export
with the key named, and the partial bag is removed (:mod:`archiver.bagtarget`).

The payload mirrors the store's keys: ``data/<source>/<session>/manifest.json``, the
artifacts beside it, and ``data/ledger/<seq>.json``, the ledger entries that record those
manifests. ``bag-info.txt`` names each manifest with its ledger number and SHA-256
(``Archiver-Manifest: <seq> <sha256> <key>``) and the ledger's head at export time
(``Archiver-Ledger-Head: SEQ:SHA256``, what ``archiver status`` prints and
``verify --anchor`` takes), so the bag can be checked against the chain at any later time.
``index.html`` (:mod:`archiver.evidence_page`) shows it all to a reader.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from archiver import __version__
from archiver.bag import (
    BAG_INFO,
    BAGIT,
    BAGIT_TXT,
    PAYLOAD_DIR,
    PAYLOAD_MANIFEST,
    TAG_MANIFEST,
    bag_info_text,
    manifest_text,
    payload_oxum,
    tag_digests,
)
from archiver.bagtarget import BagTarget
from archiver.errors import ExportError, StoreError
from archiver.evidence_page import PAGE_NAME, PageContext, PageSession, render_page
from archiver.keys import safe_key, safe_segment
from archiver.ledger import (
    CLOCK_SLACK,
    LEDGER_PREFIX,
    Ledger,
    LedgerRecord,
    entry_key,
    parse_rfc3339,
    sha256_hex,
)
from archiver.manifest import Manifest, ManifestError, decode_manifest
from archiver.status import ledger_head
from archiver.store import Store

MANIFEST = "manifest.json"
LEDGER_HEAD_LABEL = "Archiver-Ledger-Head"
MANIFEST_LABEL = "Archiver-Manifest"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSelection:
    """Which sessions: ids of one source, or those archived in ``[since, until)``."""

    source: str | None = None
    session_ids: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportedManifest:
    """A manifest as stored at ``key``, with the ledger record of its bytes."""

    key: str
    data: bytes
    manifest: Manifest
    ledger_record: LedgerRecord

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportedSession:
    """A session's current manifest, and the earlier ones a re-archive kept (newest first)."""

    current: ExportedManifest
    earlier: tuple[ExportedManifest, ...] = ()

    @property
    def manifests(self) -> tuple[ExportedManifest, ...]:
        return (self.current, *self.earlier)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportReport:
    destination: str
    sessions: int
    files: int
    bytes: int
    ledger_head: str


async def export_bag(
    store: Store,
    selection: ExportSelection,
    target: BagTarget,
    *,
    now: datetime,
    organization: str | None = None,
) -> ExportReport:
    """Write the selected sessions into ``target`` and commit it; on any failure the target
    is aborted (nothing left) and the error raised."""
    try:
        report = await _export(store, selection, target, now=now, organization=organization)
    except BaseException:
        await target.abort()
        raise
    await target.commit()
    return report


async def _export(
    store: Store,
    selection: ExportSelection,
    target: BagTarget,
    *,
    now: datetime,
    organization: str | None,
) -> ExportReport:
    sessions = await select_sessions(store, selection)
    if not sessions:
        raise ExportError(f"no archived session matches the selection in {store.description}")
    head = await ledger_head(store, now=now)
    if head is None:  # there are records, so there is an entry: the store changed under us
        raise ExportError(f"the ledger in {store.description} is empty")
    payload: dict[str, str] = {}
    total = 0
    manifests = [exported for session in sessions for exported in session.manifests]
    for exported in manifests:
        payload[_payload_path(exported.key)] = exported.sha256
        total += await _put(target, exported.key, exported.data)
        for artifact in exported.manifest.artifacts:
            path = _payload_path(artifact.key)
            if payload.get(path) == artifact.sha256:
                continue  # listed by an earlier manifest too, and copied already
            if path in payload:
                raise ExportError(
                    f"{artifact.key}: {exported.key} lists SHA-256 {artifact.sha256}, another "
                    f"manifest {payload[path]}; run `archiver verify`"
                )
            total += await _copy_checked(
                store, target, artifact.key, artifact.size, artifact.sha256, exported.key
            )
            payload[path] = artifact.sha256
    for seq in sorted({exported.ledger_record.seq for exported in manifests}):
        data = await store.read_created(entry_key(seq))
        payload[_payload_path(entry_key(seq))] = sha256_hex(data)
        total += await _put(target, entry_key(seq), data)

    page = render_page(
        [
            PageSession(
                manifest=exported.manifest,
                manifest_key=exported.key,
                manifest_sha256=exported.sha256,
                ledger_record=exported.ledger_record,
                current=exported is session.current,
            )
            for session in sessions
            for exported in session.manifests
        ],
        PageContext(
            title=_title(sessions),
            generated_at=now,
            organization=organization,
            ledger_head=head.anchor,
        ),
        link=lambda key: _payload_path(key),
    )
    info = _bag_info(sessions, now=now, organization=organization, head=head.anchor)
    info.append(("Payload-Oxum", payload_oxum(total, len(payload))))
    tags = [
        (BAGIT, BAGIT_TXT),
        (BAG_INFO, bag_info_text(info)),
        (PAYLOAD_MANIFEST, manifest_text(payload)),
        (PAGE_NAME, page),
    ]
    for name, data in tags:
        await _put_tag(target, name, data)
    await _put_tag(target, TAG_MANIFEST, manifest_text(tag_digests(tags)))
    return ExportReport(
        destination=str(target.destination),
        sessions=len(sessions),
        files=len(payload),
        bytes=total,
        ledger_head=head.anchor,
    )


async def select_sessions(store: Store, selection: ExportSelection) -> list[ExportedSession]:
    """The selected sessions' current manifests, each checked against its ledger record."""
    if selection.session_ids:
        if selection.source is None:
            raise ExportError("session ids need a source")
        keys = [
            f"{safe_key(selection.source, session_id)}/{MANIFEST}"
            for session_id in selection.session_ids
        ]
        for key, session_id in zip(keys, selection.session_ids, strict=True):
            if not await store.exists(key):
                raise ExportError(
                    f"no archived {selection.source} session {session_id!r} in "
                    f"{store.description} ({key} is absent)"
                )
    else:
        keys = [key async for key in _manifest_keys(store, selection.source)]
    ledger = Ledger(store, clock=lambda: datetime.now(UTC))
    sessions = []
    for key in dict.fromkeys(keys):
        session = await _session(store, ledger, key, selection)
        if session is not None:
            sessions.append(session)
    return sessions


async def _manifest_keys(store: Store, source: str | None) -> AsyncIterator[str]:
    prefix = f"{safe_segment(source)}/" if source else ""
    async for key in store.list_keys(prefix):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST and f"{parts[0]}/" != LEDGER_PREFIX:
            yield key


async def _session(
    store: Store, ledger: Ledger, key: str, selection: ExportSelection
) -> ExportedSession | None:
    data = await store.read_bytes(key)
    manifest = _decoded(store, key, data)
    if selection.since is not None and manifest.archived_at < selection.since:
        return None
    if selection.until is not None and manifest.archived_at >= selection.until:
        return None
    record = await ledger.find_latest(key, not_before=manifest.archived_at)
    digest = sha256_hex(data)
    if record is None:
        raise ExportError(f"{key}: no ledger entry records this manifest; run `archiver verify`")
    if record.manifest_sha256 != digest:
        raise ExportError(
            f"{key}: SHA-256 {digest}, but ledger entry {record.seq} recorded "
            f"{record.manifest_sha256}; run `archiver verify`"
        )
    current = ExportedManifest(key=key, data=data, manifest=manifest, ledger_record=record)
    earlier: list[ExportedManifest] = []
    newer = current
    while newer.manifest.previous_manifest:
        newer = await _earlier(store, ledger, newer)
        earlier.append(newer)
    return ExportedSession(current=current, earlier=tuple(earlier))


async def _earlier(store: Store, ledger: Ledger, newer: ExportedManifest) -> ExportedManifest:
    """The manifest ``newer`` replaced (kept under ``history/``), with its ledger record: the
    last one before ``newer``'s that recorded those bytes at the session's manifest key."""
    key = newer.manifest.previous_manifest
    assert key is not None
    if not await store.exists(key):
        raise ExportError(f"{key}: named by {newer.key} as the manifest it replaced, not stored")
    data = await store.read_bytes(key)
    manifest = _decoded(store, key, data)
    digest = sha256_hex(data)
    stop = manifest.archived_at - CLOCK_SLACK
    for seq in range(newer.ledger_record.seq - 1, -1, -1):
        entry = await ledger.read(seq)
        if entry is None:
            continue
        for record in entry.records:
            if (
                record.manifest_key == newer.ledger_record.manifest_key
                and record.manifest_sha256 == digest
            ):
                return ExportedManifest(key=key, data=data, manifest=manifest, ledger_record=record)
        if parse_rfc3339(entry.recorded_at) < stop:
            break
    raise ExportError(f"{key}: no ledger entry records this manifest; run `archiver verify`")


def _decoded(store: Store, key: str, data: bytes) -> Manifest:
    try:
        return decode_manifest(data, key=key)
    except ManifestError as exc:
        raise ExportError(f"{key} in {store.description} cannot be read: {exc.detail}") from exc


async def _copy_checked(
    store: Store, target: BagTarget, key: str, size: int, sha256: str, manifest_key: str
) -> int:
    hasher = hashlib.sha256()
    copied = 0
    try:
        async with target.open_file(_payload_path(key)) as sink:
            async for chunk in store.iter_bytes(key):
                hasher.update(chunk)
                copied += len(chunk)
                if copied <= size:  # a longer object is read to the end, never copied whole
                    await sink.write(chunk)
    except StoreError as exc:
        raise ExportError(f"{key}: cannot be read from {store.description}: {exc}") from exc
    digest = hasher.hexdigest()
    if (copied, digest) != (size, sha256):
        raise ExportError(
            f"{key}: {copied} bytes with SHA-256 {digest} in {store.description}, but "
            f"{manifest_key} lists {size} bytes with SHA-256 {sha256}: the store's copy is "
            "not the evidence; nothing was exported"
        )
    return copied


async def _put(target: BagTarget, key: str, data: bytes) -> int:
    async with target.open_file(_payload_path(key)) as sink:
        await sink.write(data)
    return len(data)


async def _put_tag(target: BagTarget, name: str, data: bytes) -> None:
    async with target.open_file(name) as sink:
        await sink.write(data)


def _payload_path(key: str) -> str:
    return f"{PAYLOAD_DIR}/{key}"


def _bag_info(
    sessions: list[ExportedSession], *, now: datetime, organization: str | None, head: str
) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    if organization:
        fields.append(("Source-Organization", organization))
    fields += [
        ("Bagging-Date", now.date().isoformat()),
        ("Bag-Software-Agent", f"archiver {__version__}"),
        (
            "External-Description",
            f"Evidence of {len(sessions)} archived test session(s): each session's manifest, "
            "and those a re-archive replaced, with every file each lists, and the ledger "
            "entries recording the manifests",
        ),
    ]
    fields += [
        (
            "External-Identifier",
            f"{session.current.manifest.source}/{session.current.manifest.session_id}",
        )
        for session in sessions
    ]
    fields += [
        (MANIFEST_LABEL, f"{exported.ledger_record.seq} {exported.sha256} {exported.key}")
        for session in sessions
        for exported in session.manifests
    ]
    fields.append((LEDGER_HEAD_LABEL, head))
    return fields


def _title(sessions: list[ExportedSession]) -> str:
    if len(sessions) == 1:
        manifest = sessions[0].current.manifest
        return f"Evidence: {manifest.source} session {manifest.session_id}"
    return f"Evidence: {len(sessions)} test sessions"
