"""End to end: vendor ids and file names that try to escape the store or collide.

A small Perfecto-shaped app lists executions whose ids are ``../`` paths, absolute paths,
hold NUL bytes, run to a thousand characters, carry a right-to-left override, or are the
NFC and NFD spellings of the same word; their files are named with the same tricks. Two
``run --once`` passes with a file store must keep everything under the evidence root, give
each session its own manifest, store every byte intact, and write nothing the second time.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from archiver_sim.runner import SimulatorThread
from tests.support.cli import run_archiver, write_config
from tests.support.secrets import SecretScan

EXECUTIONS = "/export/api/v1/test-executions"
HOSTILE = (
    "../../etc/passwd",
    "/abs/path",
    "a\u0000b",
    "x" * 1000,
    "evil\u202egnp.exe",
    "caf\u00e9",  # NFC
    "cafe\u0301",  # NFD: the same word, a different id
    "..",
    ".hidden",
    "con:aux\\..\\win",
)


def body_of(index: int, name: str) -> bytes:
    return hashlib.sha256(f"{index}:{name}".encode("utf-8", "surrogatepass")).digest() * 64


class HostileVendor:
    """Serves the listing, empty command lists and the files, for SimulatorThread."""

    def __init__(self) -> None:
        self.url = ""
        now = int(time.time() * 1000) - 600_000
        self.resources: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        for index, name in enumerate(HOSTILE):
            self.files[f"{index}/v"] = body_of(index, "video")
            self.files[f"{index}/a"] = body_of(index, name)
            self.resources.append(
                {
                    "id": name,
                    "name": name,
                    "startTime": now - index * 1000,
                    "endTime": now - index * 1000 + 500,
                    "status": "PASSED",
                    "videos": [{"downloadUrl": f"@/files/{index}/v/{quote(name, safe='')}.mp4"}],
                    "artifacts": [
                        {
                            "type": "DEVICE_LOGS",
                            "path": f"@/files/{index}/a/{quote(name, safe='')}.log",
                        }
                    ],
                }
            )

    def applications(self) -> dict[str, web.Application]:
        app = web.Application()
        app.router.add_get(EXECUTIONS, self._list)
        app.router.add_get("/files/{index}/{what}/{name:.*}", self._file)
        app.router.add_get("/{tail:.*}", self._empty)
        return {"api": app}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self.url = base_urls["api"]
        for resource in self.resources:
            for entry in (*resource["videos"], *resource["artifacts"]):
                field = "downloadUrl" if "downloadUrl" in entry else "path"
                entry[field] = entry[field].replace("@", self.url, 1)

    async def _list(self, request: web.Request) -> web.Response:
        metadata = {"processingStatus": "PROCESSING_COMPLETE", "truncated": False}
        return web.json_response({"resources": self.resources, "metadata": metadata})

    async def _file(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['index']}/{request.match_info['what']}"
        return web.Response(body=self.files[key], content_type="application/octet-stream")

    async def _empty(self, request: web.Request) -> web.Response:
        metadata = {"processingStatus": "PROCESSING_COMPLETE", "truncated": False}
        return web.json_response({"resources": [], "metadata": metadata})


def snapshot(root: Path) -> dict[str, float]:
    return {
        str(path.relative_to(root)): path.stat().st_mtime
        for path in root.rglob("*")
        if path.is_file() and ".incoming" not in path.parts
    }


def test_hostile_ids_and_file_names_stay_in_the_store(tmp_path: Path) -> None:
    before = set(os.listdir(tmp_path.parent))
    with SimulatorThread(HostileVendor()) as vendor:
        deployment = write_config(
            tmp_path / "deploy", perfecto_url=vendor.url, perfecto={"pdf_report": False}
        )
        scan = SecretScan()
        first = run_archiver("run", "--once", config=deployment.config)
        scan.add_result("first", first)
        assert first.returncode == 0, first.stderr[-3000:]
        evidence = deployment.evidence.resolve()
        keys_after_first = snapshot(evidence)
        second = run_archiver("run", "--once", config=deployment.config)
        scan.add_result("second", second)
        assert second.returncode == 0, second.stderr[-3000:]

    assert set(os.listdir(tmp_path.parent)) == before, "something was written next to the test"
    for path in tmp_path.rglob("*"):
        assert path.resolve().is_relative_to(tmp_path.resolve()), path
    for path in evidence.rglob("*"):
        assert path.resolve().is_relative_to(evidence), path
        assert "\0" not in str(path) and ".." not in path.parts
        assert len(path.name.encode()) <= 255
    manifests = deployment.manifests()
    assert len(manifests) == len(HOSTILE)
    assert sorted(m["session_id"] for m in manifests.values()) == sorted(HOSTILE)
    for index, name in enumerate(HOSTILE):
        (manifest,) = [m for m in manifests.values() if m["session_id"] == name]
        deployment.verify_manifest(manifest)
        digests = {entry["sha256"] for entry in manifest["artifacts"]}
        for what in ("video", name):
            assert hashlib.sha256(body_of(index, what)).hexdigest() in digests, (index, what)
    # The second pass wrote nothing: same files, untouched.
    assert snapshot(evidence) == keys_after_first
    scan.add_tree(tmp_path)
    scan.assert_clean()
