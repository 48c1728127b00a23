"""``python -m bench.export_memory``: peak memory of ``archiver export`` against video size.

For each size, a folder store is made holding one session whose video is that big (a
sparse file of zeros: no disk is spent on the source, its SHA-256 is real), with its
manifest and ledger entry; then the installed ``archiver export`` writes it as a bag folder
and as a zip, in a fresh process each, and the process's peak resident memory (``wait4``'s
``ru_maxrss``) is printed. Memory that stays flat while the size grows is the point: every
byte is streamed from the store through SHA-256 into the bag, never held whole. The bags
themselves take real disk space (``--workdir``), once each, removed after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from archiver import __version__
from archiver.ledger import Ledger
from archiver.manifest import Manifest, StoredArtifact
from archiver.store.filesystem import FilesystemStore

MIB = 1024 * 1024
ARCHIVER = Path(sys.executable).with_name("archiver")
SESSION = "bench-export-session"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_memory", description=__doc__)
    parser.add_argument(
        "--sizes-mib",
        default="16,256,1024",
        help="video sizes in MiB, comma-separated (default 16,256,1024)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where stores and bags go")
    args = parser.parse_args()
    sizes = [int(text) * MIB for text in args.sizes_mib.split(",")]
    print("| video | bag as | peak RSS | seconds |")
    print("|---|---|---|---|")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="archiver-export-", dir=args.workdir) as work:
            config = asyncio.run(make_store(Path(work), size))
            for form in ("--out", "--zip"):
                out = Path(work) / ("bag" if form == "--out" else "bag.zip")
                peak_kib, seconds = measure(config, form, out)
                peak = f"{peak_kib / 1024:.1f} MiB"
                print(f"| {size // MIB} MiB | {form[2:]} | {peak} | {seconds:.1f} |")
                sys.stdout.flush()
                shutil.rmtree(out) if out.is_dir() else out.unlink()
    return 0


async def make_store(root: Path, size: int) -> Path:
    evidence = root / "evidence"
    store = FilesystemStore(str(evidence))
    key = f"perfecto/{SESSION}/videos/00-video.mp4"
    video = evidence / key
    video.parent.mkdir(parents=True)
    with video.open("wb") as file:
        file.truncate(size)  # sparse: zeros the file system does not store
    digest = hashlib.sha256()
    with video.open("rb") as file:
        while chunk := file.read(8 * MIB):
            digest.update(chunk)
    now = datetime.now(UTC)
    manifest = Manifest(
        source="perfecto",
        session_id=SESSION,
        archived_at=now,
        archiver_version=__version__,
        session={"id": SESSION, "name": "export memory benchmark"},
        artifacts=(
            StoredArtifact(
                key=key,
                size=size,
                sha256=digest.hexdigest(),
                kind="video",
                content_type="video/mp4",
                source_url=None,
            ),
        ),
    )
    data = manifest.to_bytes()
    manifest_key = f"perfecto/{SESSION}/manifest.json"
    await store.put_bytes(manifest_key, data, content_type="application/json")
    await Ledger(store, clock=lambda: now).append(
        source="perfecto",
        session_id=SESSION,
        manifest_key=manifest_key,
        manifest_sha256=hashlib.sha256(data).hexdigest(),
        previous_manifest_key=None,
    )
    await store.close()
    config = root / "archiver.toml"
    config.write_text(
        f'[store]\nurl = "file://{evidence}"\n[state]\nurl = "sqlite:///{root}/state.db"\n'
    )
    return config


def measure(config: Path, form: str, out: Path) -> tuple[int, float]:
    """Peak RSS (KiB) and wall seconds of one export, in a process of its own."""
    started = time.monotonic()
    command = [str(ARCHIVER), "--config", str(config), "export"]
    command += ["--source", "perfecto", "--id", SESSION, form, str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        assert process.stderr is not None
        raise SystemExit(f"export failed: {process.stderr.read().decode()}")
    return usage.ru_maxrss, time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())
