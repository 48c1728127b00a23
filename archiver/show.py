"""``archiver show``: a readable summary of one archived session, straight from the store.

It reads the session's ``manifest.json`` (the key is the one the engine always uses, so
neither the state database nor a running daemon is needed), looks up the manifest's newest
ledger entry, and asks the store what it reports about each object (on S3: retention mode
and date, legal hold, encryption, storage class, version). It checks nothing: that is
``archiver verify``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from archiver.errors import StoreError
from archiver.keys import safe_key
from archiver.ledger import Ledger, LedgerRecord, sha256_hex
from archiver.manifest import Manifest, ManifestError, StoredArtifact, decode_manifest
from archiver.model import rfc3339
from archiver.progress import human_bytes
from archiver.store import Store

INFO_CONCURRENCY = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSummary:
    manifest_key: str
    manifest_sha256: str
    manifest: Manifest
    ledger_entry: LedgerRecord | None
    manifest_info: Mapping[str, str]
    artifact_info: Mapping[str, Mapping[str, str] | None]  # None: the store has no such object

    def to_json(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "source": manifest.source,
            "session_id": manifest.session_id,
            "archived_at": rfc3339(manifest.archived_at),
            "archiver_version": manifest.archiver_version,
            "manifest_key": self.manifest_key,
            "manifest_sha256": self.manifest_sha256,
            "previous_manifest": manifest.previous_manifest,
            "ledger_entry": self.ledger_entry.to_json() if self.ledger_entry else None,
            "store_reports": dict(self.manifest_info),
            "artifacts": [
                {**artifact.to_json(), "store_reports": self._info(artifact)}
                for artifact in self.artifacts
            ],
            "total_bytes": self.total_bytes,
            "not_archived": list(manifest.not_archived),
        }

    @property
    def artifacts(self) -> tuple[StoredArtifact, ...]:
        return self.manifest.artifacts

    @property
    def total_bytes(self) -> int:
        return sum(artifact.size for artifact in self.artifacts)

    def _info(self, artifact: StoredArtifact) -> dict[str, str] | None:
        info = self.artifact_info.get(artifact.key)
        return None if info is None else dict(info)


async def summarize(store: Store, source: str, session_id: str) -> SessionSummary | None:
    """The summary of one session, or None if the store holds no manifest for it."""
    key = f"{safe_key(source, session_id)}/manifest.json"
    if not await store.exists(key):
        return None
    data = await store.read_bytes(key)
    try:
        manifest = decode_manifest(data, key=key)
    except ManifestError as exc:
        unread = "cannot be read" if exc.too_new else "is not a manifest"
        raise StoreError(f"{key} in {store.description} {unread}: {exc.detail}") from exc
    ledger = Ledger(store, clock=lambda: datetime.now(UTC))
    entry = await ledger.find_latest(key, not_before=manifest.archived_at)
    slots = asyncio.Semaphore(INFO_CONCURRENCY)

    async def info(object_key: str) -> Mapping[str, str] | None:
        async with slots:
            try:
                return await store.object_info(object_key)
            except StoreError:
                return None

    keys = [artifact.key for artifact in manifest.artifacts]
    results = await asyncio.gather(info(key), *(info(object_key) for object_key in keys))
    return SessionSummary(
        manifest_key=key,
        manifest_sha256=sha256_hex(data),
        manifest=manifest,
        ledger_entry=entry,
        manifest_info=results[0] or {},
        artifact_info=dict(zip(keys, results[1:], strict=True)),
    )


def render(summary: SessionSummary) -> str:
    manifest = summary.manifest
    lines = [
        f"{manifest.source} session {manifest.session_id}",
        f"  archived at   {rfc3339(manifest.archived_at)} (archiver {manifest.archiver_version})",
        f"  manifest      {summary.manifest_key}",
        f"  sha256        {summary.manifest_sha256}",
    ]
    entry = summary.ledger_entry
    if entry is None:
        lines.append("  ledger        NOT RECORDED (run `archiver verify`)")
    else:
        match = "" if entry.manifest_sha256 == summary.manifest_sha256 else " (HASH DIFFERS)"
        lines.append(f"  ledger        entry {entry.seq}, recorded {entry.recorded_at}{match}")
    if manifest.previous_manifest:
        lines.append(f"  replaces      {manifest.previous_manifest}")
    lines.extend(f"  {line}" for line in _protection_lines(summary.manifest_info))
    artifacts = summary.artifacts
    lines.append(f"  artifacts     {len(artifacts)}, {human_bytes(summary.total_bytes)} in all")
    for artifact in artifacts:
        info = summary.artifact_info.get(artifact.key)
        note = " (NOT IN THE STORE)" if info is None else _retained_until(info)
        lines.append(
            f"    {artifact.kind:<18} {human_bytes(artifact.size):>10}  "
            f"{artifact.sha256}  {artifact.key}{note}"
        )
    for note in manifest.not_archived:
        lines.append(f"  not archived  {note}")
    return "\n".join(lines)


def _protection_lines(info: Mapping[str, str]) -> list[str]:
    lines = []
    if "object_lock_mode" in info:
        lines.append(
            f"retention     {info['object_lock_mode']} until "
            f"{info.get('object_lock_retain_until', '?')}"
        )
    if "legal_hold" in info:
        lines.append(f"legal hold    {info['legal_hold']}")
    if "server_side_encryption" in info:
        key_id = info.get("sse_kms_key_id")
        key_note = f" (key {key_id})" if key_id else ""
        lines.append(f"encryption    {info['server_side_encryption']}{key_note}")
    if "storage_class" in info:
        lines.append(f"storage class {info['storage_class']}")
    if "version_id" in info:
        lines.append(f"version       {info['version_id']}")
    return lines


def _retained_until(info: Mapping[str, str]) -> str:
    until = info.get("object_lock_retain_until")
    return f"  [{info.get('object_lock_mode')} until {until}]" if until else ""
