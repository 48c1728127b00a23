"""The tamper-evident ledger: an append-only hash chain of every manifest ever archived.

Each entry is one immutable object in the store, ``ledger/<seq>.json`` (``seq`` zero-padded
to 12 digits, from 0), holding when it was recorded; ``manifests``: for each manifest it
records (one or more), its key and SHA-256, the key of the manifest it replaced (a
re-archive's ``previous_manifest``) and the session; and ``previous_entry_sha256``: the
SHA-256 of the stored bytes of entry ``seq - 1`` (64 zeros for entry 0). Changing, removing or
re-ordering any entry breaks the chain after it, and a manifest whose bytes differ from its
recorded hash has been altered: ``archiver verify`` checks both.

Appending creates the next entry with the store's ``put_bytes_if_absent``: of two writers
(two processes, or two daemons sharing a bucket) reaching for the same number, one wins and
the other moves to the next number and chains onto the winner's entry, so the chain never
forks. Manifests stored while an entry is being written share the next entry, so the
chain's one-write-at-a-time never holds archiving back. A process remembers the last entry
it wrote; a fresh process finds the end of the chain with a binary search over ``exists``
(about ``2 * log2(n)`` requests), never a listing.

The engine appends after the manifest is stored and before the state row. A crash between
the two leaves a manifest without an entry; the next run finds that manifest on its
recovery path and calls :meth:`Ledger.ensure_recorded`, which looks backwards from the end
of the chain (no further than shortly before the manifest's ``archived_at``) and appends
only if no entry with that manifest's hash is there.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from archiver.errors import StoreError
from archiver.manifest import ManifestError, decode_manifest
from archiver.model import rfc3339
from archiver.store import Store

LEDGER_PREFIX = "ledger/"
GENESIS_SHA256 = "0" * 64
SEQ_DIGITS = 12
# How far before a manifest's archived_at its entry may have been recorded (clock skew
# between writers); the backwards search stops there.
CLOCK_SLACK = timedelta(days=1)
# A conditional write can lose to one that then fails (S3's 409): the number stays free and
# is tried again, a few times, before the append gives up.
FREE_SEQ_ATTEMPTS = 20
# Manifests recorded by one entry at most (the appends that queued while one was written).
MAX_MANIFESTS_PER_ENTRY = 256

_ENTRY_KEY = re.compile(rf"ledger/(\d{{{SEQ_DIGITS}}})\.json")


def entry_key(seq: int) -> str:
    return f"{LEDGER_PREFIX}{seq:0{SEQ_DIGITS}d}.json"


def entry_seq(key: str) -> int | None:
    """The sequence number a ledger key stands for, or None for any other key."""
    match = _ENTRY_KEY.fullmatch(key)
    return int(match.group(1)) if match else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRecord:
    """One manifest as a ledger entry records it, with the entry's number and time."""

    seq: int
    recorded_at: str
    source: str
    session_id: str
    manifest_key: str
    manifest_sha256: str
    previous_manifest_key: str | None

    def stored_fields(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "session_id": self.session_id,
            "manifest_key": self.manifest_key,
            "manifest_sha256": self.manifest_sha256,
            "previous_manifest_key": self.previous_manifest_key,
        }

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "recorded_at": self.recorded_at, **self.stored_fields()}


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    seq: int
    recorded_at: str
    records: tuple[LedgerRecord, ...]
    previous_entry_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "recorded_at": self.recorded_at,
            "manifests": [record.stored_fields() for record in self.records],
            "previous_entry_sha256": self.previous_entry_sha256,
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LedgerEntry:
        """Parse a stored entry; ValueError if it is not one."""
        try:
            raw = json.loads(data)
            seq = _typed(raw, "seq", int)
            recorded_at = _typed(raw, "recorded_at", str)
            records = tuple(
                LedgerRecord(
                    seq=seq,
                    recorded_at=recorded_at,
                    source=_typed(item, "source", str),
                    session_id=_typed(item, "session_id", str),
                    manifest_key=_typed(item, "manifest_key", str),
                    manifest_sha256=_typed(item, "manifest_sha256", str),
                    previous_manifest_key=_optional_string(item, "previous_manifest_key"),
                )
                for item in _typed(raw, "manifests", list)
            )
            entry = cls(
                seq=seq,
                recorded_at=recorded_at,
                records=records,
                previous_entry_sha256=_typed(raw, "previous_entry_sha256", str),
            )
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise ValueError(f"not a ledger entry: {exc}") from exc
        if not entry.records:
            raise ValueError("not a ledger entry: it records no manifest")
        return entry


@dataclass(slots=True, eq=False)  # compared by identity: two may carry the same fields
class _Request:
    """A manifest waiting for the entry that will record it."""

    source: str
    session_id: str
    manifest_key: str
    manifest_sha256: str
    previous_manifest_key: str | None
    recorded: asyncio.Future[LedgerRecord]


class Ledger:
    """Appends to (and looks things up in) the ledger kept in ``store``.

    Appends made while an entry is being written wait, and the next entry records them all
    (up to ``MAX_MANIFESTS_PER_ENTRY``): the chain is written one entry at a time, so this
    keeps a slow write (an fsync, a round trip to S3) from limiting how many sessions per
    second can be archived.
    """

    def __init__(self, store: Store, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._lock = asyncio.Lock()
        self._waiting: list[_Request] = []
        self._last: tuple[int, str] | None = None  # (seq, SHA-256) of the last entry written

    async def append(
        self,
        *,
        source: str,
        session_id: str,
        manifest_key: str,
        manifest_sha256: str,
        previous_manifest_key: str | None,
    ) -> LedgerRecord:
        """Record this manifest in an entry chained onto the end of the ledger."""
        request = _Request(
            source=source,
            session_id=session_id,
            manifest_key=manifest_key,
            manifest_sha256=manifest_sha256,
            previous_manifest_key=previous_manifest_key,
            recorded=asyncio.get_running_loop().create_future(),
        )
        self._waiting.append(request)
        async with self._lock:
            if request.recorded.done():  # an entry written meanwhile recorded it
                return request.recorded.result()
            batch = self._waiting[:MAX_MANIFESTS_PER_ENTRY]
            if request not in batch:
                batch = [request, *batch[: MAX_MANIFESTS_PER_ENTRY - 1]]
            self._waiting = [other for other in self._waiting if other not in batch]
            try:
                records = await self._write_entry(batch)
            except BaseException:
                # The others wait on; whoever holds the lock next writes them.
                self._waiting[:0] = [other for other in batch if other is not request]
                raise
            for other, record in zip(batch, records, strict=True):
                if other is not request:
                    other.recorded.set_result(record)
            return records[batch.index(request)]

    async def _write_entry(self, batch: list[_Request]) -> list[LedgerRecord]:
        seq = self._last[0] + 1 if self._last else await self.next_seq()
        free_attempts = 0
        while True:
            recorded_at = rfc3339(self._clock())
            entry = LedgerEntry(
                seq=seq,
                recorded_at=recorded_at,
                records=tuple(
                    LedgerRecord(
                        seq=seq,
                        recorded_at=recorded_at,
                        source=request.source,
                        session_id=request.session_id,
                        manifest_key=request.manifest_key,
                        manifest_sha256=request.manifest_sha256,
                        previous_manifest_key=request.previous_manifest_key,
                    )
                    for request in batch
                ),
                previous_entry_sha256=await self._entry_sha256(seq - 1),
            )
            data = entry.to_bytes()
            key = entry_key(seq)
            if await self._store.put_bytes_if_absent(key, data, content_type="application/json"):
                self._last = (seq, sha256_hex(data))
                return list(entry.records)
            if await self._store.exists(key):
                seq += 1  # another writer took this number: chain onto its entry
                continue
            free_attempts += 1
            if free_attempts >= FREE_SEQ_ATTEMPTS:
                raise StoreError(f"cannot append ledger entry {key}: conditional writes fail")
            await asyncio.sleep(0.05 * free_attempts)

    async def ensure_recorded(
        self,
        *,
        source: str,
        session_id: str,
        manifest_key: str,
        manifest: bytes,
    ) -> LedgerRecord:
        """The record of this stored manifest, appended now if no entry has its hash."""
        digest = sha256_hex(manifest)
        archived_at, previous_manifest_key = _manifest_facts(manifest, manifest_key)
        found = await self.find_latest(manifest_key, not_before=archived_at)
        if found is not None and found.manifest_sha256 == digest:
            return found
        return await self.append(
            source=source,
            session_id=session_id,
            manifest_key=manifest_key,
            manifest_sha256=digest,
            previous_manifest_key=previous_manifest_key,
        )

    async def find_latest(
        self, manifest_key: str, *, not_before: datetime | None = None
    ) -> LedgerRecord | None:
        """The newest record of ``manifest_key``, searching backwards from the end.

        The search stops at the first entry recorded more than a day before ``not_before``
        (None: it may walk the whole ledger). Missing or unreadable entries are skipped here;
        reporting them is ``verify``'s job.
        """
        stop = None if not_before is None else not_before - CLOCK_SLACK
        seq = await self.next_seq() - 1
        while seq >= 0:
            entry = await self.read(seq)
            if entry is not None:
                for record in reversed(entry.records):
                    if record.manifest_key == manifest_key:
                        return record
                if stop is not None and _recorded_before(entry.recorded_at, stop):
                    return None
            seq -= 1
        return None

    async def read(self, seq: int) -> LedgerEntry | None:
        """Entry ``seq``, or None if it is missing or not a ledger entry."""
        key = entry_key(seq)
        if not await self._store.exists(key):
            return None
        try:
            return LedgerEntry.from_bytes(await self._store.read_created(key))
        except ValueError:
            return None

    async def next_seq(self) -> int:
        """The first free number after the end of the chain (binary search over ``exists``)."""
        if not await self._store.exists(entry_key(0)):
            return 0
        low, high = 0, 1
        while await self._store.exists(entry_key(high)):
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            if await self._store.exists(entry_key(middle)):
                low = middle
            else:
                high = middle
        return high

    async def _entry_sha256(self, seq: int) -> str:
        if seq < 0:
            return GENESIS_SHA256
        if self._last is not None and self._last[0] == seq:
            return self._last[1]
        key = entry_key(seq)
        if not await self._store.exists(key):
            raise StoreError(
                f"ledger entry {key} is missing, so the chain cannot be continued; "
                "run `archiver verify`"
            )
        return sha256_hex(await self._store.read_created(key))


def parse_rfc3339(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _recorded_before(recorded_at: str, moment: datetime) -> bool:
    try:
        return parse_rfc3339(recorded_at) < moment
    except ValueError:
        return False


def _manifest_facts(manifest: bytes, key: str) -> tuple[datetime | None, str | None]:
    """``archived_at`` and ``previous_manifest`` of a stored manifest, where readable."""
    try:
        decoded = decode_manifest(manifest, key=key)
    except ManifestError:
        return None, None
    return decoded.archived_at, decoded.previous_manifest


def _optional_string(raw: Any, name: str) -> str | None:
    value = raw.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _typed(raw: Any, name: str, kind: type) -> Any:
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name} is not a {kind.__name__}")
    return value
