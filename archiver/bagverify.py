"""``archiver verify --bag DIR``: check an exported bag on its own, and against the store.

On its own (:func:`archiver.bag.check_bag`): the BagIt declaration, every payload file
against ``manifest-sha256.txt`` (none missing, none added), the tag files against
``tagmanifest-sha256.txt`` (so ``bag-info.txt`` and ``index.html`` cannot be changed
unnoticed either), and Payload-Oxum. Then the ledger references the export wrote into
``bag-info.txt``: each ``Archiver-Manifest: <seq> <sha256> <key>`` must be the manifest in
the payload, and the ledger entry in the payload must record those bytes for that session.

With a store (a config file was given), the bag is also held against the store's ledger:
each entry in the bag must still be the store's entry of that number, byte for byte, and the
``Archiver-Ledger-Head`` entry must still have the SHA-256 noted at export time. Whether the
chain itself is whole is ``archiver verify``'s question (``--anchor`` with that head).
"""

from __future__ import annotations

import re
from pathlib import Path

from archiver.bag import PAYLOAD_DIR, BagCheck, check_bag, file_sha256
from archiver.errors import StoreError
from archiver.export import LEDGER_HEAD_LABEL, MANIFEST_LABEL
from archiver.ledger import LedgerEntry, entry_key, sha256_hex
from archiver.store import Store

_MANIFEST_REFERENCE = re.compile(r"(\d+) ([0-9a-f]{64}) (\S+)")
_HEAD = re.compile(r"(\d+):([0-9a-f]{64})")


def check_bag_with_ledger(root: Path) -> BagCheck:
    """The bag checked on its own, ledger references included."""
    check = check_bag(root)
    for text in check.values(MANIFEST_LABEL):
        reference = _MANIFEST_REFERENCE.fullmatch(text)
        if reference is None:
            check.problems.append(f"bag-info.txt: {MANIFEST_LABEL} {text!r} is not SEQ SHA256 KEY")
            continue
        seq, digest, key = int(reference[1]), reference[2], reference[3]
        listed = check.payload.get(f"{PAYLOAD_DIR}/{key}")
        if listed != digest:
            check.problems.append(
                f"bag-info.txt: {key} has SHA-256 {digest}, the payload's is {listed or 'absent'}"
            )
        entry = _bag_entry(root, seq, check)
        if entry is not None and not any(
            _session_folder(record.manifest_key) == _session_folder(key)
            and record.manifest_sha256 == digest
            for record in entry.records
        ):
            check.problems.append(f"{PAYLOAD_DIR}/{entry_key(seq)}: does not record {key} {digest}")
    heads = check.values(LEDGER_HEAD_LABEL)
    if len(heads) != 1 or _HEAD.fullmatch(heads[0]) is None:
        check.problems.append(f"bag-info.txt: expected one {LEDGER_HEAD_LABEL}: SEQ:SHA256")
    return check


async def check_bag_against_store(root: Path, check: BagCheck, store: Store) -> None:
    """Add to ``check`` where the bag's ledger entries and head differ from ``store``'s."""
    ledger_files = sorted((root / PAYLOAD_DIR / "ledger").glob("*.json"))
    for path in ledger_files:
        key = f"ledger/{path.name}"
        stored = await _read(store, key, check)
        if stored is not None and sha256_hex(stored) != file_sha256(path)[1]:
            check.problems.append(f"{key}: the store's entry differs from the bag's")
    for head in check.values(LEDGER_HEAD_LABEL):
        found = _HEAD.fullmatch(head)
        if found is None:
            continue
        key = entry_key(int(found[1]))
        stored = await _read(store, key, check)
        if stored is not None and sha256_hex(stored) != found[2]:
            check.problems.append(
                f"{key}: SHA-256 {sha256_hex(stored)} in {store.description}, the bag's "
                f"{LEDGER_HEAD_LABEL} says {found[2]}: the ledger was rewritten since the export"
            )


async def _read(store: Store, key: str, check: BagCheck) -> bytes | None:
    try:
        if not await store.exists(key):
            check.problems.append(f"{key}: in the bag, not in {store.description}")
            return None
        return await store.read_created(key)
    except StoreError as exc:
        check.problems.append(f"{key}: cannot be read: {exc}")
        return None


def _session_folder(key: str) -> str:
    """``<source>/<session>`` of a manifest's key: a manifest a re-archive replaced is
    recorded at the session's ``manifest.json`` and kept under ``history/``."""
    return "/".join(key.split("/")[:2])


def _bag_entry(root: Path, seq: int, check: BagCheck) -> LedgerEntry | None:
    path = root / PAYLOAD_DIR / entry_key(seq)
    try:
        return LedgerEntry.from_bytes(path.read_bytes())
    except FileNotFoundError:
        check.problems.append(f"{PAYLOAD_DIR}/{entry_key(seq)}: missing")
    except (OSError, ValueError) as exc:
        check.problems.append(f"{PAYLOAD_DIR}/{entry_key(seq)}: not a ledger entry: {exc}")
    return None
