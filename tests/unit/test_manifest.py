"""The manifest format: written with its version, read back by the one decoder, which reads
manifests from before versions as version 1, refuses newer ones, and names the field at fault
in anything malformed; the published schema draws the same line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.manifest import (
    MANIFEST_VERSION,
    Manifest,
    ManifestError,
    StoredArtifact,
    decode_manifest,
)
from tests.support.manifest_schema import manifest_validator, schema_errors

KEY = "perfecto/e1/manifest.json"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def manifest(**changes: Any) -> Manifest:
    fields: dict[str, Any] = {
        "source": "perfecto",
        "session_id": "e1",
        "archived_at": datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC),
        "archiver_version": "0.1.0",
        "session": {"id": "e1", "status": {"code": "PASSED"}, "tags": ["a", 1, None, 2.5]},
        "artifacts": (
            StoredArtifact(
                key="perfecto/e1/videos/00-video.mp4",
                size=1234,
                sha256=SHA,
                kind="video",
                content_type="video/mp4",
                source_url="https://files.example/videos/video.mp4",
            ),
            StoredArtifact(
                key="perfecto/e1/execution.json",
                size=0,
                sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                kind="execution_record",
                content_type=None,
                source_url=None,
            ),
        ),
        "not_archived": ("network captures: the vendor offers none",),
        "previous_manifest": "perfecto/e1/history/20261122T100000000Z-manifest.json",
    }
    fields.update(changes)
    return Manifest(**fields)


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(manifest().to_bytes())
    return loaded


def test_written_with_its_version_first() -> None:
    written = json.loads(manifest().to_bytes())
    assert MANIFEST_VERSION == 1
    assert next(iter(written)) == "manifest_version"
    assert written["manifest_version"] == 1
    assert written["archived_at"] == "2026-11-23T10:00:00.123Z"


def test_round_trip() -> None:
    original = manifest()
    data = original.to_bytes()
    decoded = decode_manifest(data, key=KEY)
    assert decoded == original
    assert decoded.to_bytes() == data  # nothing lost or reordered, the vendor record included
    assert decoded.session == original.session
    assert decode_manifest(manifest(previous_manifest=None, artifacts=()).to_bytes(), key=KEY) == (
        manifest(previous_manifest=None, artifacts=())
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(
    session=st.dictionaries(st.text(), json_values, max_size=6),
    notes=st.lists(st.text(), max_size=3),
    session_id=st.text(min_size=1),
)
def test_any_vendor_record_round_trips_verbatim(
    session: dict[str, Any], notes: list[str], session_id: str
) -> None:
    original = manifest(session=session, not_archived=tuple(notes), session_id=session_id)
    decoded = decode_manifest(original.to_bytes(), key=KEY)
    assert decoded == original
    assert decoded.to_bytes() == original.to_bytes()


def test_a_manifest_from_before_versions_reads_as_version_1() -> None:
    legacy = document()
    del legacy["manifest_version"]
    data = (json.dumps(legacy, indent=2) + "\n").encode()
    decoded = decode_manifest(data, key=KEY)
    assert decoded == manifest()
    # Written again it says its version; everything else is the same.
    assert json.loads(decoded.to_bytes()) == {"manifest_version": 1, **legacy}


@pytest.mark.parametrize("version", [2, 17])
def test_a_newer_version_is_refused(version: int) -> None:
    newer = {**document(), "manifest_version": version, "retention": {"days": 3650}}
    with pytest.raises(ManifestError) as caught:
        decode_manifest(json.dumps(newer).encode(), key=KEY)
    error = caught.value
    assert error.too_new
    assert error.key == KEY and error.field == "manifest_version"
    assert "written by a newer archiver" in str(error)
    assert str(error).startswith(f"{KEY}: manifest_version: {version},")
    assert isinstance(error, ValueError)


def _place(document: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The object or array holding the value at dotted ``path``, and its name or index."""
    target: Any = document
    parts: list[Any] = [int(part) if part.isdigit() else part for part in path.split(".")]
    for part in parts[:-1]:
        target = target[part]
    return target, parts[-1]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target, name = _place(document, path)
        target[name] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target, name = _place(document, path)
        del target[name]

    return change


TOP_FIELDS = [
    "source",
    "session_id",
    "archived_at",
    "archiver_version",
    "session",
    "artifacts",
    "not_archived",
    "previous_manifest",
]
ARTIFACT_FIELDS = ["key", "size", "sha256", "kind", "content_type", "source_url"]

# (what is done to a good manifest, the field the error must name)
MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    *[(f"no {name}", _drop(name), name) for name in TOP_FIELDS],
    *[
        (f"an artifact without {name}", _drop(f"artifacts.1.{name}"), f"artifacts[1].{name}")
        for name in ARTIFACT_FIELDS
    ],
    ("version as a string", _set("manifest_version", "1"), "manifest_version"),
    ("version 0", _set("manifest_version", 0), "manifest_version"),
    ("version true", _set("manifest_version", True), "manifest_version"),
    ("version 1.5", _set("manifest_version", 1.5), "manifest_version"),
    ("version null", _set("manifest_version", None), "manifest_version"),
    ("an unknown field", _set("signature", "abc"), "signature"),
    ("an empty source", _set("source", ""), "source"),
    ("a numeric session id", _set("session_id", 42), "session_id"),
    ("a null session id", _set("session_id", None), "session_id"),
    ("a time with an offset", _set("archived_at", "2026-11-23T11:00:00+01:00"), "archived_at"),
    ("a time without a zone", _set("archived_at", "2026-11-23T10:00:00"), "archived_at"),
    ("a date alone", _set("archived_at", "2026-11-23"), "archived_at"),
    ("a time in words", _set("archived_at", "yesterday"), "archived_at"),
    ("a time as a number", _set("archived_at", 1795000000), "archived_at"),
    ("a numeric archiver version", _set("archiver_version", 1), "archiver_version"),
    ("a session record that is a list", _set("session", [1, 2]), "session"),
    ("a session record that is a string", _set("session", "{}"), "session"),
    ("artifacts as an object", _set("artifacts", {"key": "x"}), "artifacts"),
    ("an artifact that is a string", _set("artifacts.0", "videos/a.mp4"), "artifacts[0]"),
    ("an unknown artifact field", _set("artifacts.1.md5", "abc"), "artifacts[1].md5"),
    ("an empty key", _set("artifacts.0.key", ""), "artifacts[0].key"),
    ("a numeric key", _set("artifacts.0.key", 7), "artifacts[0].key"),
    ("a negative size", _set("artifacts.0.size", -1), "artifacts[0].size"),
    ("a size as a string", _set("artifacts.0.size", "1234"), "artifacts[0].size"),
    ("a fractional size", _set("artifacts.0.size", 12.5), "artifacts[0].size"),
    ("a size true", _set("artifacts.0.size", True), "artifacts[0].size"),
    ("an uppercase sha256", _set("artifacts.0.sha256", SHA.upper()), "artifacts[0].sha256"),
    ("a short sha256", _set("artifacts.0.sha256", SHA[:-1]), "artifacts[0].sha256"),
    ("a sha256 with a prefix", _set("artifacts.0.sha256", f"sha256:{SHA}"), "artifacts[0].sha256"),
    ("a sha256 that is not hex", _set("artifacts.0.sha256", "g" * 64), "artifacts[0].sha256"),
    ("a numeric sha256", _set("artifacts.0.sha256", 5), "artifacts[0].sha256"),
    ("a null kind", _set("artifacts.0.kind", None), "artifacts[0].kind"),
    ("a numeric content type", _set("artifacts.0.content_type", 5), "artifacts[0].content_type"),
    ("a source url list", _set("artifacts.0.source_url", ["u"]), "artifacts[0].source_url"),
    ("not_archived as a string", _set("not_archived", "none"), "not_archived"),
    ("a note that is a number", _set("not_archived", ["fine", 3]), "not_archived[1]"),
    ("a numeric previous manifest", _set("previous_manifest", 5), "previous_manifest"),
]


@pytest.fixture(scope="module")
def validator() -> Any:
    return manifest_validator()


@pytest.mark.parametrize(
    ("change", "field"),
    [(change, field) for _, change, field in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_malformed_manifests_are_refused_naming_the_field(
    change: Callable[[dict[str, Any]], None], field: str, validator: Any
) -> None:
    damaged = document()
    change(damaged)
    with pytest.raises(ManifestError) as caught:
        decode_manifest(json.dumps(damaged).encode(), key=KEY)
    error = caught.value
    assert (error.key, error.field, error.too_new) == (KEY, field, False)
    assert str(error).startswith(f"{KEY}: {field}: ")
    # The published schema refuses it too.
    assert schema_errors(validator, damaged)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b'{"source": "perfecto",',
        b"\xff\xfe{}",
        b"[]",
        b'"manifest"',
        b"null",
        b'{"source": "a", "source": "b"}',
    ],
    ids=[
        "empty",
        "text",
        "cut short",
        "not utf-8",
        "an array",
        "a string",
        "null",
        "a name twice",
    ],
)
def test_what_is_not_a_json_object_is_refused(data: bytes) -> None:
    with pytest.raises(ManifestError) as caught:
        decode_manifest(data, key=KEY)
    assert caught.value.field is None and not caught.value.too_new
    assert str(caught.value).startswith(f"{KEY}: ")


def test_a_whole_number_written_with_a_point_is_a_whole_number(validator: Any) -> None:
    """JSON (and JSON Schema's integer) do not tell 1234 from 1234.0; neither does the
    decoder."""
    written = document()
    written["manifest_version"] = 1.0
    written["artifacts"][0]["size"] = 1234.0
    assert decode_manifest(json.dumps(written).encode(), key=KEY) == manifest()
    assert schema_errors(validator, written) == []


def test_a_vendor_record_with_infinity_stays_readable() -> None:
    """A vendor that sends Infinity or NaN (Python's JSON reader takes them) has them written
    back in its record as they came: such manifests are read, their numbers kept; a NaN
    anywhere the manifest itself has a number is refused."""
    written = manifest(session={"id": "e1", "score": float("inf"), "ratio": float("nan")})
    data = written.to_bytes()
    assert b'"score": Infinity' in data and b'"ratio": NaN' in data
    decoded = decode_manifest(data, key=KEY)
    assert decoded.session["score"] == float("inf")
    assert decoded.to_bytes() == data
    with pytest.raises(ManifestError, match=r"artifacts\[0\]\.size"):
        decode_manifest(data.replace(b'"size": 1234', b'"size": NaN'), key=KEY)


def test_a_time_that_does_not_exist_is_refused() -> None:
    damaged = {**document(), "archived_at": "2026-02-30T10:00:00.000Z"}
    with pytest.raises(ManifestError, match="archived_at"):
        decode_manifest(json.dumps(damaged).encode(), key=KEY)


@pytest.mark.parametrize(
    "moment",
    ["2026-11-23T10:00:00Z", "2026-11-23T10:00:00.1Z", "2026-11-23T10:00:00.123456Z"],
)
def test_any_rfc3339_utc_time_is_read(moment: str, validator: Any) -> None:
    written = {**document(), "archived_at": moment}
    decoded = decode_manifest(json.dumps(written).encode(), key=KEY)
    assert decoded.archived_at == datetime.fromisoformat(moment)
    assert decoded.archived_at.tzinfo is not None
    assert schema_errors(validator, written) == []


def test_the_schema_accepts_what_the_archiver_writes(validator: Any) -> None:
    legacy = document()
    del legacy["manifest_version"]
    for written in (document(), legacy, json.loads(manifest(previous_manifest=None).to_bytes())):
        assert schema_errors(validator, written) == []
