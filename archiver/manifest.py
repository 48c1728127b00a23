"""The manifest: the per-session evidence record, ``<source>/<session>/manifest.json``.

This module owns the format. :class:`Manifest` writes it (``manifest_version`` first) and
:func:`decode_manifest` is the one reader: ``show``, ``verify``, the ledger and the engine all
go through it, so they agree on what a manifest is. Anything else is refused with a
:class:`ManifestError` naming the manifest's key and the field at fault.

Versions: a manifest says which version of the format it follows in ``manifest_version``.
Manifests written before the field existed have none and are read as version 1 (the format
did not otherwise change), so evidence already stored stays readable and verifiable. A
version newer than :data:`MANIFEST_VERSION` is refused: it was written by a newer archiver,
and reading it as if it were an older version could miss what it lists.

The same format is published for readers outside this code as a JSON Schema,
``docs/manifest.schema.json``, described in ``docs/manifest.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from archiver.model import JSON, rfc3339

MANIFEST_VERSION = 1
"""The version this archiver writes, and the newest it reads."""

LEGACY_VERSION = 1
"""What a manifest without ``manifest_version`` (written before it existed) is read as."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
# RFC 3339 in UTC with a trailing Z, as docs/manifest.schema.json has it.
_RFC3339_UTC = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?Z"
)
_FIELDS = frozenset(
    {
        "manifest_version",
        "source",
        "session_id",
        "archived_at",
        "archiver_version",
        "session",
        "artifacts",
        "not_archived",
        "previous_manifest",
    }
)
_ARTIFACT_FIELDS = frozenset({"key", "size", "sha256", "kind", "content_type", "source_url"})


class ManifestError(ValueError):
    """A stored manifest that cannot be read: malformed, or of a newer version.

    ``key`` is the manifest's store key, ``field`` the field at fault (``artifacts[2].sha256``;
    None when the document as a whole is not one), ``problem`` what is wrong with it, and
    ``too_new`` whether it is a manifest written by a newer archiver rather than a damaged one.
    """

    def __init__(self, key: str, field: str | None, problem: str, *, too_new: bool = False) -> None:
        self.key = key
        self.field = field
        self.problem = problem
        self.too_new = too_new
        super().__init__(f"{key}: {self.detail}")

    @property
    def detail(self) -> str:
        """The message without the key, for reports that show the key already."""
        return self.problem if self.field is None else f"{self.field}: {self.problem}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredArtifact:
    """An artifact as it was stored: the manifest lists one of these per object."""

    key: str
    size: int
    sha256: str
    kind: str
    content_type: str | None
    source_url: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "size": self.size,
            "sha256": self.sha256,
            "kind": self.kind,
            "content_type": self.content_type,
            "source_url": self.source_url,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """The per-session evidence record, written after every artifact it lists is stored.

    ``session`` is the vendor's record of the session, verbatim.
    """

    source: str
    session_id: str
    archived_at: datetime
    archiver_version: str
    session: JSON = field(repr=False)
    artifacts: tuple[StoredArtifact, ...]
    not_archived: tuple[str, ...] = ()
    previous_manifest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "source": self.source,
            "session_id": self.session_id,
            "archived_at": rfc3339(self.archived_at),
            "archiver_version": self.archiver_version,
            "session": self.session,
            "artifacts": [artifact.to_json() for artifact in self.artifacts],
            "not_archived": list(self.not_archived),
            "previous_manifest": self.previous_manifest,
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n").encode()


def decode_manifest(data: bytes, *, key: str) -> Manifest:
    """The manifest stored at ``key`` with bytes ``data``; :class:`ManifestError` if those
    are not a manifest of a version this archiver reads (``key`` is for the message only)."""
    document = _parse(data, key)
    version = _version(document, key)
    if version > MANIFEST_VERSION:
        raise ManifestError(
            key,
            "manifest_version",
            f"{version}, written by a newer archiver (this archiver reads versions up to "
            f"{MANIFEST_VERSION}); upgrade archiver to read it",
            too_new=True,
        )
    fields = _Fields(document, key, "")
    fields.refuse_others(_FIELDS)
    # Taken in the order they are written, so the first field at fault is the one named.
    source = fields.text("source")
    session_id = fields.text("session_id")
    archived_at = _moment(fields, "archived_at")
    archiver_version: str = fields.require("archiver_version", str)
    session: dict[str, Any] = fields.require("session", dict)
    artifacts = tuple(
        _artifact(item, key, f"artifacts[{index}]")
        for index, item in enumerate(fields.require("artifacts", list))
    )
    not_archived = tuple(
        _string_item(item, key, f"not_archived[{index}]")
        for index, item in enumerate(fields.require("not_archived", list))
    )
    return Manifest(
        source=source,
        session_id=session_id,
        archived_at=archived_at,
        archiver_version=archiver_version,
        session=session,
        artifacts=artifacts,
        not_archived=not_archived,
        previous_manifest=fields.optional_text("previous_manifest"),
    )


def _parse(data: bytes, key: str) -> dict[str, Any]:
    try:
        # NaN and Infinity are read as Python's json module wrote them: they can only be in the
        # vendor's record, which is kept as it was parsed (every other number is checked).
        document = json.loads(data, object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(key, None, f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ManifestError(key, None, f"not a JSON object but {_kind(document)}")
    return document


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two values for one name would let two readers see two different manifests.
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise ValueError(f"the name {name!r} appears twice in one object")
        document[name] = value
    return document


def _version(document: dict[str, Any], key: str) -> int:
    if "manifest_version" not in document:
        return LEGACY_VERSION
    version = _whole_number(document["manifest_version"])
    if version is None or version < 1:
        raise ManifestError(
            key,
            "manifest_version",
            f"must be a whole number from 1, not {_shown(document['manifest_version'])}",
        )
    return version


def _artifact(item: Any, key: str, where: str) -> StoredArtifact:
    if not isinstance(item, dict):
        raise ManifestError(key, where, f"must be an object, not {_kind(item)}")
    fields = _Fields(item, key, f"{where}.")
    fields.refuse_others(_ARTIFACT_FIELDS)
    size = fields.whole("size")
    if size < 0:
        raise ManifestError(key, f"{where}.size", f"must not be negative, not {size}")
    sha256 = fields.require("sha256", str)
    if not _SHA256.fullmatch(sha256):
        raise ManifestError(
            key, f"{where}.sha256", f"must be 64 lowercase hex digits, not {_shown(sha256)}"
        )
    return StoredArtifact(
        key=fields.text("key"),
        size=size,
        sha256=sha256,
        kind=fields.require("kind", str),
        content_type=fields.optional_text("content_type"),
        source_url=fields.optional_text("source_url"),
    )


def _string_item(item: Any, key: str, where: str) -> str:
    if not isinstance(item, str):
        raise ManifestError(key, where, f"must be a string, not {_kind(item)}")
    return item


def _moment(fields: _Fields, name: str) -> datetime:
    text = fields.require(name, str)
    if not _RFC3339_UTC.fullmatch(text):
        raise ManifestError(
            fields.key,
            fields.prefix + name,
            f"must be an RFC 3339 time in UTC ending in Z, not {_shown(text)}",
        )
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as exc:
        raise ManifestError(fields.key, fields.prefix + name, f"not a real time: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Fields:
    """The fields of one JSON object of a manifest, taken out with their types checked."""

    document: dict[str, Any]
    key: str
    prefix: str  # where the object is, for messages: "" or "artifacts[2]."

    def require(self, name: str, kind: type[Any]) -> Any:
        if name not in self.document:
            raise ManifestError(self.key, self.prefix + name, "missing")
        value = self.document[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ManifestError(
                self.key,
                self.prefix + name,
                f"must be {_KIND_NAMES[kind]}, not {_kind(value)}",
            )
        return value

    def whole(self, name: str) -> int:
        if name not in self.document:
            raise ManifestError(self.key, self.prefix + name, "missing")
        number = _whole_number(self.document[name])
        if number is None:
            raise ManifestError(
                self.key,
                self.prefix + name,
                f"must be a whole number, not {_shown(self.document[name])}",
            )
        return number

    def text(self, name: str) -> str:
        value: str = self.require(name, str)
        if not value:
            raise ManifestError(self.key, self.prefix + name, "must not be empty")
        return value

    def optional_text(self, name: str) -> str | None:
        if name not in self.document:
            raise ManifestError(self.key, self.prefix + name, "missing")
        value = self.document[name]
        if value is not None and not isinstance(value, str):
            raise ManifestError(
                self.key, self.prefix + name, f"must be a string or null, not {_kind(value)}"
            )
        return value

    def refuse_others(self, known: frozenset[str]) -> None:
        others = sorted(set(self.document) - known)
        if others:
            raise ManifestError(self.key, self.prefix + others[0], "not a field of a manifest")


_KIND_NAMES: dict[type[Any], str] = {
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _whole_number(value: Any) -> int | None:
    """``value`` as an int if it is a whole JSON number (``3`` or ``3.0``: JSON does not tell
    them apart, nor does JSON Schema's ``integer``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
