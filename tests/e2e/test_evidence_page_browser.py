"""The evidence page in a real browser: Debian's headless Chromium renders an exported bag's
``index.html`` (a screenshot is taken), logs no console message, and every file of the bag
is linked from the page, with links, images and videos all relative and all resolving
inside the bag. The page stored beside a manifest (``[store] evidence_page``) likewise."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from archiver.bag import parse_manifest
from tests.support.cli import TOKEN, run_archiver, write_config
from tests.support.simulators import PerfectoFactory

KIB = 1024
CHROMIUM = shutil.which("chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install --no-install-recommends "
    "chromium), so the evidence page is not rendered in a browser here",
)


class _References(HTMLParser):
    """Every ``a href``, ``img src`` and ``video src`` of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.videos: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if tag == "img" and found.get("src"):
            self.images.append(str(found["src"]))
        if tag == "video" and found.get("src"):
            self.videos.append(str(found["src"]))


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # the tests may run as root
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def references(page: Path, profile: Path) -> _References:
    dumped = chromium(page, profile, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert console_messages(dumped.stderr) == []
    parsed = _References()
    parsed.feed(dumped.stdout)
    return parsed


def resolved(page: Path, reference: str) -> Path:
    parts = urlsplit(reference)
    assert not parts.scheme and not parts.netloc, f"not a relative link: {reference}"
    return (page.parent / unquote(parts.path)).resolve()


def test_console_messages_are_seen(tmp_path: Path) -> None:
    """The console check below can fail: a page that logs an error is caught."""
    page = tmp_path / "noisy.html"
    page.write_text('<!DOCTYPE html><script>console.error("broken page")</script>')
    result = chromium(page, tmp_path / "profile", "--dump-dom")
    assert any("broken page" in line for line in console_messages(result.stderr))


def test_the_evidence_page_renders_with_every_file_linked(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = perfecto_sim_factory(
        token=TOKEN, executions=2, video_size=64 * KIB, artifact_size=8 * KIB
    )
    deployment = write_config(
        tmp_path / "archive",
        perfecto_url=sim.api_url,
        store={"url": f"file://{tmp_path}/archive/evidence", "evidence_page": True},
    )
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    ids = sorted(deployment.manifests())
    bag = tmp_path / "bag"
    args = ["--source", "perfecto", "--id", ids[0], "--id", ids[1], "--out", str(bag)]
    exported = run_archiver("export", *args, config=deployment.config)
    assert exported.returncode == 0, exported.stderr
    page = bag / "index.html"

    screenshot = tmp_path / "page.png"
    shot = chromium(
        page, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,4000"
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    assert screenshot.stat().st_size > 10 * KIB  # a rendered page, not a blank one
    assert console_messages(shot.stderr) == []

    found = references(page, tmp_path / "profile")
    payload = parse_manifest((bag / "manifest-sha256.txt").read_text())
    linked = {resolved(page, link) for link in found.links if not link.startswith("#")}
    assert {(bag / path).resolve() for path in payload} <= linked
    for reference in found.links + found.images + found.videos:
        if not reference.startswith("#"):
            target = resolved(page, reference)
            assert target.is_file() and bag.resolve() in target.parents, reference
    artifacts = [
        item for session_id in ids for item in deployment.manifests()[session_id]["artifacts"]
    ]
    videos = {
        (bag / "data" / item["key"]).resolve() for item in artifacts if item["kind"] == "video"
    }
    screenshots = {
        (bag / "data" / item["key"]).resolve() for item in artifacts if item["kind"] == "screenshot"
    }
    assert videos and screenshots
    assert {resolved(page, video) for video in found.videos} == videos  # playable in place
    assert screenshots <= {resolved(page, image) for image in found.images}

    # The page stored beside a manifest links every file it lists, relative to itself.
    stored_page = deployment.evidence / "perfecto" / ids[0] / "index.html"
    beside = references(stored_page, tmp_path / "profile")
    manifest = deployment.manifests()[ids[0]]
    targets = {resolved(stored_page, link) for link in beside.links if not link.startswith("#")}
    listed = {
        (deployment.evidence / item["key"]).resolve()
        for item in manifest["artifacts"]
        if item["kind"] != "evidence_page"
    }
    assert listed <= targets
    assert all(target.is_file() for target in targets)
