"""Every manifest ``archiver demo`` writes, for every vendor, validates against the
published docs/manifest.schema.json, and the archiver's decoder reads each one as the schema
does; the schema, like the decoder, refuses a damaged one."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from archiver.manifest import ManifestError, decode_manifest
from archiver.sources.registry import SOURCES
from tests.support.cli import run_archiver
from tests.support.manifest_schema import manifest_validator, schema_errors

VENDORS = {spec.name for spec in SOURCES}


@pytest.fixture(scope="module")
def demo_evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("manifest-schema") / "demo"
    result = run_archiver("demo", "--dir", str(root), "--executions", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "evidence"


def stored_manifests(evidence: Path) -> dict[str, bytes]:
    """Every manifest in the store by key: current ones and the copies kept in history/."""
    found = {}
    for path in sorted(evidence.rglob("*manifest.json")):
        key = path.relative_to(evidence).as_posix()
        if path.name == "manifest.json" or path.parent.name == "history":
            found[key] = path.read_bytes()
    return found


def test_every_manifest_the_demo_writes_validates(demo_evidence: Path) -> None:
    validator = manifest_validator()
    manifests = stored_manifests(demo_evidence)
    assert {key.split("/")[0] for key in manifests} == VENDORS
    for key, data in manifests.items():
        document = json.loads(data)
        assert schema_errors(validator, document) == [], key
        assert next(iter(document)) == "manifest_version" and document["manifest_version"] == 1


def test_the_decoder_reads_them_as_the_schema_does(demo_evidence: Path) -> None:
    for key, data in stored_manifests(demo_evidence).items():
        decoded = decode_manifest(data, key=key)
        assert decoded.to_bytes() == data, key  # every field the schema checked, read back
        assert key.startswith(f"{decoded.source}/")
        for artifact in decoded.artifacts:
            # What an auditor does with the manifest alone: hash the object at its key.
            stored = (demo_evidence / artifact.key).read_bytes()
            assert len(stored) == artifact.size, artifact.key
            assert hashlib.sha256(stored).hexdigest() == artifact.sha256, artifact.key


def _bad_sha256(document: dict[str, Any]) -> None:
    document["artifacts"][0]["sha256"] = document["artifacts"][0]["sha256"][:-1] + "G"


def _no_artifacts(document: dict[str, Any]) -> None:
    del document["artifacts"]


@pytest.mark.parametrize(
    ("damage", "field"),
    [(_bad_sha256, "artifacts[0].sha256"), (_no_artifacts, "artifacts")],
    ids=["bad-sha256", "no-artifacts"],
)
def test_schema_and_decoder_refuse_a_damaged_demo_manifest(
    demo_evidence: Path, damage: Any, field: str
) -> None:
    validator = manifest_validator()
    key, data = next(
        (key, data)
        for key, data in stored_manifests(demo_evidence).items()
        if json.loads(data)["artifacts"]
    )
    original = json.loads(data)
    damaged = copy.deepcopy(original)
    damage(damaged)
    assert schema_errors(validator, original) == []
    assert schema_errors(validator, damaged)
    with pytest.raises(ManifestError) as caught:
        decode_manifest(json.dumps(damaged).encode(), key=key)
    assert caught.value.field == field
