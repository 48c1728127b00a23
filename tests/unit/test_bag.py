"""BagIt tag files and the bag check (archiver/bag.py), and the evidence page's escaping."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import bagit

from archiver.bag import (
    BAGIT_TXT,
    bag_info_text,
    check_bag,
    manifest_text,
    parse_bag_info,
    parse_manifest,
    payload_oxum,
    tag_digests,
)
from archiver.evidence_page import PageContext, PageSession, render_page
from archiver.manifest import Manifest, StoredArtifact


def make_bag(root: Path, files: dict[str, bytes]) -> None:
    root.mkdir()
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    payload = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
    size = sum(len(data) for data in files.values())
    tags = [
        ("bagit.txt", BAGIT_TXT),
        ("bag-info.txt", bag_info_text([("Payload-Oxum", payload_oxum(size, len(files)))])),
        ("manifest-sha256.txt", manifest_text(payload)),
    ]
    for name, data in tags:
        (root / name).write_bytes(data)
    (root / "tagmanifest-sha256.txt").write_bytes(manifest_text(tag_digests(tags)))


def test_a_bag_made_here_is_valid_here_and_for_bagit(tmp_path: Path) -> None:
    make_bag(tmp_path / "bag", {"data/a/b.txt": b"hello", "data/c.bin": bytes(range(256))})
    check = check_bag(tmp_path / "bag")
    assert check.ok, check.problems
    assert (check.files, check.bytes) == (2, 261)
    bagit.Bag(str(tmp_path / "bag")).validate()


def test_what_the_check_finds(tmp_path: Path) -> None:
    root = tmp_path / "bag"
    make_bag(root, {"data/a.txt": b"hello", "data/b.txt": b"world"})
    (root / "data" / "extra.txt").write_bytes(b"not listed")
    (root / "data" / "b.txt").unlink()
    (root / "data" / "a.txt").write_bytes(b"hellO")
    problems = check_bag(root).problems
    assert any(p.startswith("data/extra.txt: in the payload, not in") for p in problems)
    assert "data/b.txt: listed in manifest-sha256.txt, missing" in problems
    assert any(p.startswith("data/a.txt: SHA-256") for p in problems)
    assert any("Payload-Oxum 10.2, the payload holds 5.1" in p for p in problems)


def test_paths_and_values_cannot_break_the_tag_files() -> None:
    odd = "data/100%\nsure\r.txt"
    digest = "a" * 64
    text = manifest_text({odd: digest}).decode()
    assert text == f"{digest}  data/100%25%0Asure%0D.txt\n"
    assert parse_manifest(text) == {odd: digest}
    # A vendor's id with a line break cannot add a label of its own.
    info = bag_info_text([("External-Identifier", "perfecto/x\nPayload-Oxum: 1.1")]).decode()
    assert parse_bag_info(info) == [("External-Identifier", "perfecto/x\\u000aPayload-Oxum: 1.1")]


def test_the_page_escapes_everything_the_vendor_said() -> None:
    hostile = '<script>alert("x")</script>'
    manifest = Manifest(
        source="perfecto",
        session_id=hostile,
        archived_at=datetime(2026, 12, 1, tzinfo=UTC),
        archiver_version="1",
        session={"name": hostile, hostile: [1, None, {"deep": True}]},
        artifacts=(
            StoredArtifact(
                key='perfecto/x/"><img src=x onerror=alert(1)>.png',
                size=3,
                sha256="0" * 64,
                kind=hostile,
                content_type="image/png",
                source_url=None,
            ),
        ),
        not_archived=(hostile,),
    )
    page = render_page(
        [PageSession(manifest=manifest, manifest_key="perfecto/x/manifest.json")],
        PageContext(title=hostile, generated_at=datetime(2026, 12, 2, tzinfo=UTC)),
        link=lambda key: key,
    ).decode()
    assert "<script" not in page
    assert "onerror=alert(1)>" not in page
    assert page.count("&lt;script&gt;") >= 5
    assert '<img loading="lazy" src="perfecto/x/&quot;&gt;&lt;img' in page
