"""BagIt 1.0 (RFC 8493): the tag files of a bag, and checking a bag on disk.

A bag is a folder with ``bagit.txt`` (version and encoding), ``bag-info.txt`` (labelled
metadata), ``manifest-sha256.txt`` (the SHA-256 of every file under ``data/``, the payload)
and ``tagmanifest-sha256.txt`` (the SHA-256 of the other top-level files). This module writes
those files' text and checks a bag the way any BagIt validator does, so that
``archiver verify --bag`` needs nothing beyond the bag itself. What goes into a bag is
:mod:`archiver.export`'s business; where its bytes go, :mod:`archiver.bagtarget`'s.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
PAYLOAD_DIR = "data"
PAYLOAD_MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
BAG_INFO = "bag-info.txt"
BAGIT = "bagit.txt"
READ_CHUNK = 1024 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MANIFEST_LINE = re.compile(r"([0-9a-fA-F]{64})[ \t]+(.+)")


def encode_path(path: str) -> str:
    """A file path as a manifest line holds it (RFC 8493 2.1.3: CR, LF and % encoded)."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def decode_path(text: str) -> str:
    return (
        text.replace("%0A", "\n")
        .replace("%0a", "\n")
        .replace("%0D", "\r")
        .replace("%0d", "\r")
        .replace("%25", "%")
    )


def manifest_text(digests: Mapping[str, str]) -> bytes:
    """A manifest file: ``<sha256> <path>`` per file, sorted by path."""
    return "".join(f"{digests[path]}  {encode_path(path)}\n" for path in sorted(digests)).encode()


def info_value(text: str) -> str:
    """``text`` made safe as one bag-info value: control characters shown as ``\\uXXXX``."""
    return _CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def bag_info_text(fields: Sequence[tuple[str, str]]) -> bytes:
    """``bag-info.txt``: ``Label: value`` lines in the order given (labels may repeat)."""
    return "".join(f"{label}: {info_value(value)}\n" for label, value in fields).encode()


def payload_oxum(total_bytes: int, files: int) -> str:
    return f"{total_bytes}.{files}"


def parse_bag_info(text: str) -> list[tuple[str, str]]:
    """The labelled fields of ``bag-info.txt``, continuation lines joined."""
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and fields:
            label, value = fields[-1]
            fields[-1] = (label, f"{value} {line.strip()}")
            continue
        label, colon, value = line.partition(":")
        if colon:
            fields.append((label.strip(), value.strip()))
    return fields


def parse_manifest(text: str) -> dict[str, str]:
    """``{path: sha256}`` from a manifest file; ValueError names a line that is not one."""
    digests: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        found = _MANIFEST_LINE.fullmatch(line)
        if found is None:
            raise ValueError(f"line {number} is not '<sha256> <path>'")
        digests[decode_path(found.group(2))] = found.group(1).lower()
    return digests


@dataclass(slots=True)
class BagCheck:
    """What checking a bag found: ``problems`` empty means it is valid and complete."""

    files: int = 0
    bytes: int = 0
    info: list[tuple[str, str]] = field(default_factory=list)
    payload: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": self.files, "bytes": self.bytes, "problems": self.problems}

    def values(self, label: str) -> list[str]:
        return [value for name, value in self.info if name.lower() == label.lower()]


def check_bag(root: Path) -> BagCheck:
    """Check the bag at ``root``: its declaration, every payload file against the payload
    manifest (none missing, none unlisted), the tag manifest, and Payload-Oxum."""
    check = BagCheck()
    declaration = _read_text(root / BAGIT, check)
    if declaration is not None and "BagIt-Version: 1.0" not in declaration:
        check.problems.append(f"{BAGIT}: not a BagIt 1.0 declaration")
    info = _read_text(root / BAG_INFO, check)
    check.info = parse_bag_info(info) if info is not None else []
    check.payload = _manifest(root, PAYLOAD_MANIFEST, check)
    on_disk = {
        path.relative_to(root).as_posix()
        for path in (root / PAYLOAD_DIR).rglob("*")
        if path.is_file() or path.is_symlink()
    }
    for path in sorted(on_disk - set(check.payload)):
        check.problems.append(f"{path}: in the payload, not in {PAYLOAD_MANIFEST}")
    for path, expected in sorted(check.payload.items()):
        if not path.startswith(f"{PAYLOAD_DIR}/"):
            check.problems.append(f"{PAYLOAD_MANIFEST}: {path} is outside {PAYLOAD_DIR}/")
            continue
        size = _check_file(root, path, expected, PAYLOAD_MANIFEST, check)
        if size is not None:
            check.files += 1
            check.bytes += size
    for path, expected in sorted(_manifest(root, TAG_MANIFEST, check).items()):
        _check_file(root, path, expected, TAG_MANIFEST, check)
    oxum = check.values("Payload-Oxum")
    if info is not None and len(oxum) != 1:
        check.problems.append(f"{BAG_INFO}: expected one Payload-Oxum, found {len(oxum)}")
    elif oxum and oxum[0] != payload_oxum(check.bytes, check.files):
        check.problems.append(
            f"{BAG_INFO}: Payload-Oxum {oxum[0]}, the payload holds "
            f"{payload_oxum(check.bytes, check.files)} (bytes.files)"
        )
    return check


def file_sha256(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(READ_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return size, hasher.hexdigest()


def _check_file(root: Path, path: str, expected: str, manifest: str, check: BagCheck) -> int | None:
    target = root / path
    if ".." in Path(path).parts or Path(path).is_absolute():
        check.problems.append(f"{manifest}: {path} leaves the bag")
        return None
    if not target.is_file():
        check.problems.append(f"{path}: listed in {manifest}, missing")
        return None
    size, digest = file_sha256(target)
    if digest != expected:
        check.problems.append(f"{path}: SHA-256 {digest}, {manifest} lists {expected}")
    return size


def _manifest(root: Path, name: str, check: BagCheck) -> dict[str, str]:
    text = _read_text(root / name, check)
    if text is None:
        return {}
    try:
        return parse_manifest(text)
    except ValueError as exc:
        check.problems.append(f"{name}: {exc}")
        return {}


def _read_text(path: Path, check: BagCheck) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        check.problems.append(f"{path.name}: missing")
    except (OSError, UnicodeDecodeError) as exc:
        check.problems.append(f"{path.name}: cannot be read: {exc}")
    return None


def tag_digests(files: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files}
