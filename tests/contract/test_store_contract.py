"""The Store contract (see archiver/store/__init__.py), run over every implementation.

The S3 store runs against moto's standalone server over HTTP (tests/support/s3server.py).
After the shared suite come the checks only one implementation can answer.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from botocore.exceptions import ClientError

from archiver.errors import StoreBroken, StoreError
from archiver.store import Store, beneath, holes, open_store, s3parts, syncfs
from archiver.store.filesystem import INCOMING, FilesystemStore
from archiver.store.s3 import S3Store
from archiver.store.s3errors import s3_error
from tests.contract.conftest import S3_PREFIX
from tests.support.openfiles import open_files_under
from tests.support.s3proxy import S3FaultProxy
from tests.support.s3server import S3Server

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import PartTypeDef

MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def write_object(store: Store, key: str, data: bytes, *, chunk: int = 64 * 1024) -> None:
    async with store.open_writer(key, content_type="application/octet-stream") as writer:
        for start in range(0, len(data), chunk):
            await writer.write(data[start : start + chunk])
        await writer.commit(sha256=sha256(data), size=len(data))


async def all_keys(store: Store, prefix: str = "") -> list[str]:
    return [key async for key in store.list_keys(prefix)]


async def assert_no_leftovers(store: Store, tmp_path: Path) -> None:
    assert await store.cleanup_incomplete(older_than=0) == 0
    for folder in (tmp_path / "root" / INCOMING, tmp_path / "spool"):
        if folder.exists():
            assert list(folder.iterdir()) == []
    assert [path for path in tmp_path.rglob(".archiver-*")] == []  # spare names of a replace
    assert open_files_under(tmp_path) == []


# -- the shared contract ----------------------------------------------------------------------


async def test_written_bytes_read_back_after_commit(store: Store, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    await write_object(store, "src/session-1/video.mp4", data)

    assert await store.read_bytes("src/session-1/video.mp4") == data
    assert b"".join([chunk async for chunk in store.iter_bytes("src/session-1/video.mp4")]) == data
    assert await store.exists("src/session-1/video.mp4")
    assert await store.size("src/session-1/video.mp4") == len(data)
    await assert_no_leftovers(store, tmp_path)


async def test_empty_object(store: Store) -> None:
    await write_object(store, "empty.txt", b"")
    assert await store.read_bytes("empty.txt") == b""
    assert await store.size("empty.txt") == 0


async def test_nothing_is_visible_before_commit(store: Store) -> None:
    async with store.open_writer("a/b.bin") as writer:
        await writer.write(b"some bytes")
        assert not await store.exists("a/b.bin")
        assert await all_keys(store) == []
        await writer.commit(sha256=sha256(b"some bytes"), size=10)
    assert await store.exists("a/b.bin")


async def test_size_mismatch_on_commit_keeps_nothing(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"a/short\.bin"):
        async with store.open_writer("a/short.bin") as writer:
            await writer.write(b"abc")
            await writer.commit(sha256=sha256(b"abc"), size=4)

    assert not await store.exists("a/short.bin")
    assert await all_keys(store) == []
    await assert_no_leftovers(store, tmp_path)


async def test_exception_inside_the_writer_keeps_nothing(store: Store, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="download broke"):
        async with store.open_writer("a/broken.bin") as writer:
            await writer.write(b"first half")
            raise RuntimeError("download broke")

    assert not await store.exists("a/broken.bin")
    await assert_no_leftovers(store, tmp_path)


async def test_leaving_without_commit_keeps_nothing(store: Store, tmp_path: Path) -> None:
    async with store.open_writer("a/forgotten.bin") as writer:
        await writer.write(b"never committed")

    assert not await store.exists("a/forgotten.bin")
    await assert_no_leftovers(store, tmp_path)


async def test_abort_keeps_nothing(store: Store, tmp_path: Path) -> None:
    async with store.open_writer("a/aborted.bin") as writer:
        await writer.write(b"unwanted")
        await writer.abort()
        with pytest.raises(StoreError):
            await writer.write(b"more")

    assert not await store.exists("a/aborted.bin")
    await assert_no_leftovers(store, tmp_path)


async def test_replace_is_atomic(store: Store) -> None:
    await store.put_bytes("k/manifest.json", b"old manifest")

    async with store.open_writer("k/manifest.json") as writer:
        await writer.write(b"new manifest, ")
        assert await store.read_bytes("k/manifest.json") == b"old manifest"
        await writer.write(b"longer")
        assert await store.read_bytes("k/manifest.json") == b"old manifest"
        await writer.commit(sha256=sha256(b"new manifest, longer"), size=20)

    assert await store.read_bytes("k/manifest.json") == b"new manifest, longer"


async def test_failed_replace_keeps_the_old_object(store: Store) -> None:
    await store.put_bytes("k/file", b"old")
    with pytest.raises(StoreError):
        async with store.open_writer("k/file") as writer:
            await writer.write(b"new")
            await writer.commit(sha256=sha256(b"new"), size=99)
    assert await store.read_bytes("k/file") == b"old"


async def test_put_bytes_writes_and_replaces(store: Store, tmp_path: Path) -> None:
    await store.put_bytes("m/manifest.json", b'{"v": 1}', content_type="application/json")
    assert await store.read_bytes("m/manifest.json") == b'{"v": 1}'

    await store.put_bytes("m/manifest.json", b'{"v": 2}', content_type="application/json")
    assert await store.read_bytes("m/manifest.json") == b'{"v": 2}'
    assert await store.size("m/manifest.json") == 8
    await assert_no_leftovers(store, tmp_path)


async def test_objects_written_not_yet_durable_are_visible_at_once(
    store: Store, tmp_path: Path
) -> None:
    video = os.urandom(300 * 1024)  # above the size a folder store writes on the event loop
    async with store.open_writer("s/video.mp4", durable=False) as writer:
        await writer.write(video)
        await writer.commit(sha256=sha256(video), size=len(video))
    await store.put_bytes("s/record.json", b"{}", durable=False)
    await store.put_bytes("s/shot.png", b"png", durable=False)
    await store.put_bytes("s/shot.png", b"png, again", durable=False)  # replaced
    assert await store.read_bytes("s/video.mp4") == video
    assert await all_keys(store, "s/") == ["s/record.json", "s/shot.png", "s/video.mp4"]

    await store.put_bytes("s/manifest.json", b"{}")  # durable: a barrier for the ones before
    await store.put_bytes("s/manifest.json", b"{ }")  # nothing new before it: still fine
    assert await store.read_bytes("s/shot.png") == b"png, again"
    await assert_no_leftovers(store, tmp_path)


async def test_many_durable_writes_at_once(store: Store, tmp_path: Path) -> None:
    async def archive(number: int) -> None:
        await store.put_bytes(f"s{number}/a", b"a" * number, durable=False)
        await write_object(store, f"s{number}/b", b"b" * number)
        await store.put_bytes(f"s{number}/manifest.json", b"{}")

    await asyncio.gather(*(archive(number) for number in range(20)))
    assert len(await all_keys(store)) == 60
    await assert_no_leftovers(store, tmp_path)


async def test_exists_size_and_list_keys(store: Store) -> None:
    for key in ("b/4", "a/2", "ab/3", "a/1", "a/deep/5"):
        await store.put_bytes(key, key.encode())

    assert await all_keys(store) == ["a/1", "a/2", "a/deep/5", "ab/3", "b/4"]
    assert await all_keys(store, "a/") == ["a/1", "a/2", "a/deep/5"]
    assert await all_keys(store, "a") == ["a/1", "a/2", "a/deep/5", "ab/3"]
    assert await all_keys(store, "a/de") == ["a/deep/5"]
    assert await all_keys(store, "zz/") == []
    assert await store.exists("a/1")
    assert not await store.exists("a")  # a prefix is not an object
    assert not await store.exists("missing")
    assert await store.size("missing") is None
    assert await store.size("ab/3") == 4


async def test_reading_a_missing_object_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="nothing/here"):
        await store.read_bytes("nothing/here")
    with pytest.raises(StoreError, match="nothing/here"):
        await store.object_info("nothing/here")


async def test_put_bytes_if_absent_never_replaces(store: Store, tmp_path: Path) -> None:
    assert await store.put_bytes_if_absent("ledger/000000000000.json", b"first") is True
    assert await store.put_bytes_if_absent("ledger/000000000000.json", b"second") is False
    assert await store.read_bytes("ledger/000000000000.json") == b"first"
    assert await store.put_bytes_if_absent("ledger/000000000001.json", b"") is True
    assert await store.size("ledger/000000000001.json") == 0
    await assert_no_leftovers(store, tmp_path)


async def test_put_bytes_if_absent_has_one_winner_among_racing_writers(
    store: Store, tmp_path: Path
) -> None:
    payloads = [f"writer {number} ".encode() * 200 for number in range(8)]

    results = await asyncio.gather(
        *(store.put_bytes_if_absent("race/key", payload) for payload in payloads)
    )

    assert results.count(True) == 1
    assert await store.read_bytes("race/key") == payloads[results.index(True)]
    await assert_no_leftovers(store, tmp_path)


async def test_iter_bytes_streams_in_chunks(store: Store) -> None:
    data = os.urandom(3 * MIB + 17)
    await write_object(store, "big/object.bin", data, chunk=MIB)
    chunks = [chunk async for chunk in store.iter_bytes("big/object.bin")]
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= MIB
    assert b"".join(chunks) == data


async def test_check_passes_and_object_info_is_printable(store: Store) -> None:
    await store.check()
    await store.put_bytes("a/b", b"x")
    info = await store.object_info("a/b")
    assert all(isinstance(value, str) for value in info.values())


BAD_KEYS = [
    "",
    "/etc/passwd",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "..",
    "../x",
    "a/../../x",
    "a\\..\\b",
    "a\x00b",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused(store: Store, key: str) -> None:
    with pytest.raises(ValueError):
        async with store.open_writer(key):
            pass
    with pytest.raises(ValueError):
        await store.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        await store.read_bytes(key)
    with pytest.raises(ValueError):
        [chunk async for chunk in store.iter_bytes(key)]
    with pytest.raises(ValueError):
        await store.exists(key)
    with pytest.raises(ValueError):
        await store.size(key)
    assert await all_keys(store) == []


async def test_bad_prefixes_are_refused(store: Store) -> None:
    for prefix in ("../", "/abs", "a/../"):
        with pytest.raises(ValueError):
            await all_keys(store, prefix)


async def test_cleanup_incomplete_removes_leftovers(store: Store, tmp_path: Path) -> None:
    # A writer that is never closed stands for a process that died mid-write.
    orphan = store.open_writer("a/orphan.bin")
    writer = await orphan.__aenter__()
    await writer.write(b"part")
    await writer.write(b"ial")  # a second chunk: on disk now, not only held in memory
    if isinstance(store, FilesystemStore) and store.unnamed_temps:
        # An unnamed file has nothing to clean up: the kernel frees it when its process dies.
        assert await store.cleanup_incomplete(older_than=0) == 0
        await orphan.__aexit__(None, None, None)
        await assert_no_leftovers(store, tmp_path)
        return

    assert await store.cleanup_incomplete(older_than=3600) == 0
    assert await store.cleanup_incomplete(older_than=0) == 1
    with pytest.raises(StoreError):
        await writer.commit(sha256=sha256(b"partial"), size=7)
    await orphan.__aexit__(None, None, None)

    assert not await store.exists("a/orphan.bin")
    await assert_no_leftovers(store, tmp_path)


async def test_backend_refuses_a_wrong_digest(store: Store, tmp_path: Path) -> None:
    if isinstance(store, FilesystemStore):
        pytest.skip("the filesystem store does not check digests (documented)")
    with pytest.raises(StoreError, match="SHA-256"):
        async with store.open_writer("a/tampered.bin") as writer:
            await writer.write(b"the real bytes")
            await writer.commit(sha256=sha256(b"other bytes"), size=14)
    assert not await store.exists("a/tampered.bin")
    await assert_no_leftovers(store, tmp_path)


async def test_description_names_the_kind_of_store(store: Store) -> None:
    assert store.description.partition("://")[0] in {"file", "s3", "memory"}


# -- open_store --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/path", "'ftp'"),
        ("/no/scheme", "''"),
        ("file://relative/path", "absolute path"),
        ("s3:///prefix-without-bucket", "bucket"),
    ],
)
def test_open_store_refuses_unusable_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


async def test_open_store_ignores_s3_options_for_other_schemes(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/evidence", multipart_threshold=5 * MIB, spool_dir=None)
    assert isinstance(store, FilesystemStore)
    assert (tmp_path / "evidence").is_dir()
    await store.close()


# -- filesystem only ---------------------------------------------------------------------------


async def test_filesystem_creates_restrictive_files_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "new" / "root"
    store = FilesystemStore(root)
    await store.put_bytes("src/session/video.mp4", b"evidence")

    assert stat.S_IMODE(root.stat().st_mode) & ~0o750 == 0
    assert stat.S_IMODE((root / INCOMING).stat().st_mode) & ~0o700 == 0
    assert stat.S_IMODE((root / "src" / "session").stat().st_mode) & ~0o750 == 0
    assert stat.S_IMODE((root / "src" / "session" / "video.mp4").stat().st_mode) == 0o600


async def test_filesystem_keeps_an_existing_root_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    FilesystemStore(tmp_path)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


@pytest.mark.parametrize("unnamed", [True, False])
async def test_filesystem_temp_files_stay_hidden(tmp_path: Path, unnamed: bool) -> None:
    store = FilesystemStore(tmp_path, unnamed_temps=unnamed)
    async with store.open_writer("a/file") as writer:
        await writer.write(b"pen")
        assert list((tmp_path / INCOMING).iterdir()) == []  # one chunk waits in memory
        await writer.write(b"ding")
        temps = list((tmp_path / INCOMING).iterdir())
        assert len(temps) == (0 if unnamed else 1)
        assert len(open_files_under(tmp_path)) == (1 if unnamed else 0)
        assert [path for path in tmp_path.rglob("*") if path.is_file()] == temps
        assert await all_keys(store) == []
        await writer.commit(sha256=sha256(b"pending"), size=7)
    assert await all_keys(store) == ["a/file"]
    with pytest.raises(ValueError):
        await store.put_bytes(f"{INCOMING}/planted", b"x")


@pytest.mark.parametrize(
    ("unnamed", "open_beneath"),
    [(True, True), (True, False), (False, True), (False, False)],
    ids=["unnamed-openat2", "unnamed-walk", "named-openat2", "named-walk"],
)
async def test_filesystem_key_never_escapes_the_root(
    tmp_path: Path, unnamed: bool, open_beneath: bool
) -> None:
    if open_beneath and not beneath.Opener(os.open(tmp_path, os.O_RDONLY)).usable:
        pytest.skip("this system has no openat2")
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "deeper").mkdir(parents=True)
    (outside / "deeper" / "kept").write_bytes(b"outside")
    store = FilesystemStore(root, unnamed_temps=unnamed, open_beneath=open_beneath)
    await store.put_bytes("src/session/first", b"x")  # the folders exist before the link
    (root / "link").symlink_to(outside)
    (root / "src" / "session" / "deeper").symlink_to(outside / "deeper")
    (root / "src" / "session" / "kept").symlink_to(outside / "deeper" / "kept")

    for key in ("link/deeper/kept", "src/session/deeper/kept", "src/session/kept"):
        with pytest.raises(StoreError, match="outside"):
            await store.read_bytes(key)
        with pytest.raises(StoreError, match="outside"):
            await store.size(key)
    for key in ("link/escaped", "src/session/deeper/escaped"):
        with pytest.raises(StoreError, match="outside"):
            await store.put_bytes(key, b"x")
    await store.put_bytes("src/session/kept", b"inside")  # replaces the link, not its target
    assert not (root / "src" / "session" / "kept").is_symlink()
    assert await store.read_bytes("src/session/kept") == b"inside"
    assert sorted(path.name for path in outside.rglob("*")) == ["deeper", "kept"]
    assert (outside / "deeper" / "kept").read_bytes() == b"outside"
    assert await all_keys(store, "link/") == []
    assert await store.size("src/session/first") == 1
    assert await store.size("src/session/missing") is None
    assert await store.size("src/missing/first") is None
    await store.close()


async def test_filesystem_refuses_an_unusable_root(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(StoreError, match="cannot use"):
        FilesystemStore(tmp_path / "a-file")


async def test_filesystem_file_in_the_way_is_a_store_error(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    await store.put_bytes("a", b"a file where a folder should be")
    with pytest.raises(StoreError, match=r"'a/b'.*in the way"):
        await store.put_bytes("a/b", b"x")
    assert list((tmp_path / INCOMING).iterdir()) == []


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root ignores directory permissions, so EACCES cannot happen"
)
async def test_filesystem_read_only_folder_is_a_store_error(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    await store.put_bytes("locked/first", b"x")
    (tmp_path / "locked").chmod(0o500)
    try:
        with pytest.raises(StoreError, match=r"'locked/second'.*permission denied"):
            await store.put_bytes("locked/second", b"x")
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert list((tmp_path / INCOMING).iterdir()) == []


def _failing(code: int) -> object:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


needs_syncfs = pytest.mark.skipif(not syncfs.available(), reason="this system has no syncfs")


@pytest.mark.parametrize(
    ("unnamed", "durable", "synced_by", "target", "code", "reason"),
    [
        (True, True, "fsync", (os, "fsync"), errno.ENOSPC, "no space left on device"),
        (False, True, "fsync", (os, "fsync"), errno.ENOSPC, "no space left on device"),
        (True, True, "fsync", (os, "fsync"), errno.EDQUOT, "disk quota exceeded"),
        (True, True, "fsync", (os, "link"), errno.EACCES, "permission denied"),
        (False, True, "fsync", (tempfile, "mkstemp"), errno.EACCES, "permission denied"),
        pytest.param(
            True,
            True,
            "syncfs",
            (syncfs, "syncfs"),
            errno.ENOSPC,
            "no space left on device",
            marks=needs_syncfs,
        ),
        pytest.param(
            False,
            True,
            "syncfs",
            (syncfs, "syncfs"),
            errno.EIO,
            "Input/output error",
            marks=needs_syncfs,
        ),
        # Written on the event loop: the same errors, the same clean-up.
        (True, False, "syncfs", (os, "writev"), errno.ENOSPC, "no space left on device"),
        (True, False, "syncfs", (os, "link"), errno.EACCES, "permission denied"),
        (False, False, "syncfs", (os, "replace"), errno.EROFS, "read-only file system"),
    ],
)
async def test_filesystem_os_errors_become_store_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unnamed: bool,
    durable: bool,
    synced_by: str,
    target: tuple[object, str],
    code: int,
    reason: str,
) -> None:
    # Injected, so the mapping is tested as root too (and without filling a disk).
    deferred_sync = synced_by == "syncfs" and syncfs.available()
    store = FilesystemStore(tmp_path, unnamed_temps=unnamed, deferred_sync=deferred_sync)
    monkeypatch.setattr(*target, _failing(code))
    with pytest.raises(StoreError, match=f"'src/video.mp4'.*{reason}") as caught:
        await store.put_bytes("src/video.mp4", b"x" * 1000, durable=durable)
    monkeypatch.undo()

    assert isinstance(caught.value.__cause__, OSError)
    assert not await store.exists("src/video.mp4")
    assert list((tmp_path / INCOMING).iterdir()) == []


class _Counting:
    """Counts the calls of a function it passes on to (the real one, unless told otherwise)."""

    def __init__(self, function: Callable[[int], None]) -> None:
        self.function = function
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.function(fd)


@needs_syncfs
@pytest.mark.parametrize("unnamed", [True, False])
async def test_filesystem_durable_writes_share_one_syncfs_for_everything_before_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    fsyncs, syncfs_calls = _Counting(os.fsync), _Counting(syncfs.syncfs)
    monkeypatch.setattr(os, "fsync", fsyncs)
    monkeypatch.setattr(syncfs, "syncfs", syncfs_calls)
    store = FilesystemStore(tmp_path, unnamed_temps=unnamed)
    assert store.deferred_sync

    big = os.urandom(2 * MIB)  # written in a worker thread, not on the event loop
    await asyncio.gather(
        *(store.put_bytes(f"new/s{number}/shot.png", b"png", durable=False) for number in range(8)),
        write_object(store, "new/s9/video.mp4", big),
    )
    assert syncfs_calls.calls == 2  # the video and the shots before it; then its name
    async with store.open_writer("new/s10/video.mp4", durable=False) as writer:
        await writer.write(big)
        await writer.commit(sha256=sha256(big), size=len(big))
    assert syncfs_calls.calls == 2

    # The first syncfs starts at once; the nine that come while it runs share the next, which
    # also covers the first one's name. The other nine names share two more.
    await asyncio.gather(
        *(store.put_bytes(f"new/s{number}/manifest.json", b"{}") for number in range(10))
    )
    assert syncfs_calls.calls - 2 <= 4
    assert fsyncs.calls == 0  # no file, no folder, no new folder's name
    await store.close()


@pytest.mark.parametrize("deferred_sync", [True, False])
@pytest.mark.parametrize("unnamed", [True, False])
async def test_filesystem_folders_made_for_an_object_are_durable_before_it_is_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool, deferred_sync: bool
) -> None:
    if deferred_sync and not syncfs.available():
        pytest.skip("this system has no syncfs")
    events: list[str] = []
    real_fsync, real_syncfs, real_mkdir = os.fsync, syncfs.syncfs, os.mkdir

    def fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def record_syncfs(fd: int) -> None:
        events.append("syncfs")
        real_syncfs(fd)

    def mkdir(path: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        events.append(f"mkdir {path}")
        real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(syncfs, "syncfs", record_syncfs)
    root = tmp_path / "root"
    store = FilesystemStore(root, unnamed_temps=unnamed, deferred_sync=deferred_sync)
    events.clear()
    await store.put_bytes("new/s1/shot.png", b"png", durable=False)
    await store.put_bytes("new/s1/manifest.json", b"{}")

    made = ["mkdir new", "mkdir s1"]
    folder = f"fsync {root / 'new' / 's1'}"
    if deferred_sync:
        # The folders were made for an object not durable yet: one syncfs covers their
        # names, before the manifest is linked; another the manifest's own name.
        assert events == [*made, "syncfs", "syncfs"]
    else:
        # Each new folder's name, the shot, its folder; the manifest, its folder.
        assert [event for event in events if event.startswith("mkdir")] == made
        assert events.index(f"fsync {root}") == events.index("mkdir new") + 1
        assert events.index(f"fsync {root / 'new'}") == events.index("mkdir s1") + 1
        assert events.count(folder) == 2 and "syncfs" not in events
    await store.close()


async def test_filesystem_failed_fsync_leaves_no_folder_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def folders_held_open() -> list[str]:
        targets = [os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.exists()]
        return [target for target in targets if target.startswith(str(tmp_path))]

    store = FilesystemStore(tmp_path, deferred_sync=False)  # with syncfs nothing is fsynced
    held = folders_held_open()
    monkeypatch.setattr(os, "fsync", _failing(errno.EIO))
    with pytest.raises(StoreError, match=r"new/s1/manifest\.json.*Input/output error"):
        await store.put_bytes("new/s1/manifest.json", b"{}")  # a new folder's name, or its own
    assert folders_held_open() == held
    monkeypatch.undo()
    fsyncs = _Counting(os.fsync)
    monkeypatch.setattr(os, "fsync", fsyncs)
    await store.put_bytes("new/s1/manifest.json", b"{}")
    assert await store.read_bytes("new/s1/manifest.json") == b"{}"
    # The two folder names still owed, then the file and its folder.
    assert fsyncs.calls == 4
    await store.close()


@needs_syncfs
async def test_filesystem_after_a_failed_syncfs_nothing_more_is_made_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemStore(tmp_path)
    await store.put_bytes("s/shot.png", b"png", durable=False)
    monkeypatch.setattr(syncfs, "syncfs", _failing(errno.EIO))
    with pytest.raises(StoreError, match=r"'s/manifest\.json'.*Input/output error"):
        await store.put_bytes("s/manifest.json", b"{}")
    assert not await store.exists("s/manifest.json")
    # The kernel reports a write-back error only once: a second syncfs would say all is well
    # while the shot's bytes may be lost. Nothing is made durable until a restart.
    calls = _Counting(syncfs.syncfs)
    monkeypatch.undo()
    calls.function = syncfs.syncfs
    monkeypatch.setattr(syncfs, "syncfs", calls)
    with pytest.raises(StoreBroken, match=r"'s2/manifest\.json'.*restart the archiver"):
        await store.put_bytes("s2/manifest.json", b"{}")
    assert calls.calls == 0
    assert open_files_under(tmp_path) == []
    await store.close()

    reopened = FilesystemStore(tmp_path)
    await reopened.put_bytes("s/manifest.json", b"{}")
    assert calls.calls == 2  # before the link, and after
    await reopened.close()


class _NotingLock(asyncio.Lock):
    """A lock that notes whether each task that asked for it had to wait, and how often it
    was let go while ``busy()``."""

    def __init__(self, busy: Callable[[], bool]) -> None:
        super().__init__()
        self._busy = busy
        self.had_to_wait: dict[str, bool] = {}  # by task name, the first time it asked
        self.let_go_while_busy = 0

    async def acquire(self) -> Literal[True]:
        task = asyncio.current_task()
        self.had_to_wait.setdefault(task.get_name() if task else "", self.locked())
        return await super().acquire()

    def release(self) -> None:
        self.let_go_while_busy += self._busy()
        super().release()


@needs_syncfs
async def test_filesystem_syncfs_runs_to_its_end_when_its_caller_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, entered = threading.Event(), threading.Event()
    running: list[int] = []
    most_at_once = 0
    returned = 0  # syncfs calls that have ended

    def slow_syncfs(fd: int) -> None:
        nonlocal most_at_once, returned
        running.append(fd)
        most_at_once = max(most_at_once, len(running))
        entered.set()
        release.wait(60)
        running.remove(fd)
        returned += 1

    ended_after: dict[str, int] = {}  # how many syncfs calls had ended when each task did

    def start(name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(lambda _: ended_after.setdefault(name, returned))
        return task

    monkeypatch.setattr(syncfs, "syncfs", slow_syncfs)
    store = FilesystemStore(tmp_path)
    lock = _NotingLock(busy=lambda: bool(running))
    monkeypatch.setattr(store, "_syncing", lock)
    sync_written = store._sync_written
    arrived: list[str] = []
    arrival = asyncio.Event()

    async def noting_sync_written(key: str) -> None:
        arrived.append(key)
        arrival.set()
        await sync_written(key)  # goes on, in this same step, to ask for the lock

    monkeypatch.setattr(store, "_sync_written", noting_sync_written)

    try:
        first = start("first", store.put_bytes("s1/manifest.json", b"{}"))
        await asyncio.to_thread(entered.wait, 60)
        first.cancel()
        second = start("second", store.put_bytes("s2/manifest.json", b"{}"))
        while "s2/manifest.json" not in arrived:
            arrival.clear()
            await arrival.wait()
        # The cancelled caller still holds the lock: the second waits for the same syncfs.
        assert lock.had_to_wait == {"first": False, "second": True}
        assert lock.let_go_while_busy == 0
        assert not first.done() and not second.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        await second
        assert ended_after["first"] >= 1  # the cancelled caller ended only after its syncfs
        assert most_at_once == 1
        assert not await store.exists("s1/manifest.json")
        assert await store.read_bytes("s2/manifest.json") == b"{}"

        release.clear()
        entered.clear()
        third = start("third", store.put_bytes("s3/manifest.json", b"{}"))
        await asyncio.to_thread(entered.wait, 60)
        returned_before = returned
        close_called = asyncio.Event()

        async def close_store() -> None:
            close_called.set()
            await store.close()  # goes on, in this same step, until it has to wait

        closing = start("closing", close_store())
        await close_called.wait()
        assert not closing.done()  # not while a syncfs uses the descriptor
        assert lock.had_to_wait.get("closing") is True
        release.set()
        with pytest.raises(StoreError, match=r"'s3/manifest\.json'.*the store is closed"):
            await third  # its name would need another syncfs
        await closing
        assert ended_after["closing"] > returned_before
        assert lock.let_go_while_busy == 0
    finally:
        release.set()  # a failed check leaves no syncfs waiting


async def test_filesystem_without_syncfs_makes_each_object_durable_at_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = _Counting(os.fsync)
    monkeypatch.setattr(os, "fsync", fsyncs)
    monkeypatch.setattr(syncfs, "syncfs", _failing(errno.EIO))  # never called
    store = FilesystemStore(tmp_path, deferred_sync=False)
    await store.put_bytes("s/shot.png", b"png", durable=False)
    assert fsyncs.calls == 3  # the new folder's name, the file, the name in the folder
    await store.put_bytes("s/manifest.json", b"{}")
    assert fsyncs.calls == 5


# -- S3 only -----------------------------------------------------------------------------------


def small_part_store(bucket: str, endpoint: str, tmp_path: Path) -> S3Store:
    """An S3 store that sends objects of 5 MiB and more in 5 MiB parts, 4 at a time, and
    spools where ``assert_no_leftovers`` looks."""
    return S3Store(
        bucket,
        S3_PREFIX,
        endpoint_url=endpoint,
        multipart_threshold=5 * MIB,
        multipart_chunksize=5 * MIB,
        max_concurrency=4,
        spool_dir=tmp_path / "spool",
    )


@pytest.fixture
async def s3_store(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> AsyncIterator[S3Store]:
    store = small_part_store(s3_bucket, s3_endpoint, tmp_path)
    yield store
    await store.close()


async def test_s3_multipart_upload_arrives_intact(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client, s3_server: S3Server, tmp_path: Path
) -> None:
    data = os.urandom(12 * MIB)
    async with s3_store.open_writer("src/s1/video.mp4", content_type="video/mp4") as writer:
        for start in range(0, len(data), MIB):
            await writer.write(data[start : start + MIB])
        await writer.commit(sha256=sha256(data), size=len(data))

    assert await s3_store.read_bytes("src/s1/video.mp4") == data
    head = s3_client.head_object(
        Bucket=s3_bucket, Key=f"{S3_PREFIX}/src/s1/video.mp4", ChecksumMode="ENABLED"
    )
    assert head["ETag"].endswith('-3"')  # three parts of 5 MiB, the last one 2 MiB
    parts = [data[start : start + 5 * MIB] for start in range(0, len(data), 5 * MIB)]
    md5s = b"".join(hashlib.md5(part, usedforsecurity=False).digest() for part in parts)
    assert head["ETag"] == f'"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-3"'
    if s3_server.stores_checksums:
        assert "ChecksumCRC32" in head  # every part was checked in transit (composite CRC32)
    assert head["Metadata"] == {}  # its upload began before its SHA-256 was known
    assert head["ContentType"] == "video/mp4"
    await assert_no_leftovers(s3_store, tmp_path)


async def test_s3_parts_go_up_while_the_object_is_still_being_written(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client
) -> None:
    data = os.urandom(12 * MIB)
    key = f"{S3_PREFIX}/src/s1/video.mp4"
    async with s3_store.open_writer("src/s1/video.mp4") as writer:
        await writer.write(data[: 11 * MIB])  # two whole parts of 5 MiB, and a bit
        parts = await asyncio.to_thread(_parts_when_there, s3_client, s3_bucket, key, 2)
        assert [part["Size"] for part in parts] == [5 * MIB, 5 * MIB]
        with pytest.raises(ClientError):  # nothing at the key before the commit
            s3_client.head_object(Bucket=s3_bucket, Key=key)
        await writer.write(data[11 * MIB :])
        await writer.commit(sha256=sha256(data), size=len(data))

    assert await s3_store.read_bytes("src/s1/video.mp4") == data


async def test_s3_parts_already_sent_are_punched_out_of_the_spool(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    if not _holes_supported(spool_dir):
        pytest.skip(f"the file system of {spool_dir} cannot punch holes")
    data = os.urandom(12 * MIB)
    key = f"{S3_PREFIX}/src/s1/video.mp4"
    async with s3_store.open_writer("src/s1/video.mp4") as writer:
        await writer.write(data[: 11 * MIB])  # two whole parts of 5 MiB, and a bit
        await asyncio.to_thread(_parts_when_there, s3_client, s3_bucket, key, 2)
        (spool,) = spool_dir.iterdir()
        # The two parts S3 has leave the spool (a hole); the MiB not yet sent stays.
        data_starts = await asyncio.to_thread(_first_data_when_at_least, spool, 10 * MIB)
        assert data_starts == 10 * MIB
        assert spool.stat().st_size == 11 * MIB
        await writer.write(data[11 * MIB :])
        await writer.commit(sha256=sha256(data), size=len(data))

    assert await s3_store.read_bytes("src/s1/video.mp4") == data
    await assert_no_leftovers(s3_store, tmp_path)


@pytest.mark.parametrize("damaged", [False, True], ids=["intact", "changed-in-the-spool"])
async def test_s3_parts_carry_the_crc32_of_the_bytes_written(
    damaged: bool,
    s3_http_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through a proxy that checks checksum headers as S3 does: the CRC32 of each part is
    the one of the bytes written, so a part whose bytes changed in the spool is refused."""
    if damaged:
        read = s3parts.SpoolRange.read

        def flip_first_byte(self: s3parts.SpoolRange, size: int | None = -1) -> bytes:
            at_start, data = self.tell() == 0, read(self, size)
            return bytes([data[0] ^ 1]) + data[1:] if at_start and data else data

        monkeypatch.setattr(s3parts.SpoolRange, "read", flip_first_byte)
    data = os.urandom(13 * MIB)
    with S3FaultProxy(s3_http_endpoint, seed=1, rate=0.0) as proxy:
        store = small_part_store(s3_bucket, proxy.url, tmp_path)
        try:
            async with store.open_writer("src/s1/video.mp4") as writer:
                for start in range(0, len(data), 3 * MIB):  # pieces across part boundaries
                    await writer.write(
                        data[start : start + 2 * MIB], data[start + 2 * MIB : start + 3 * MIB]
                    )
                await writer.commit(sha256=sha256(data), size=len(data))
        except StoreError as error:
            assert damaged, error
            assert "UploadPart" in str(error) and "BadDigest (HTTP 400)" in str(error)
            assert not await store.exists("src/s1/video.mp4")
        else:
            assert not damaged
            assert await store.read_bytes("src/s1/video.mp4") == data
        await assert_no_leftovers(store, tmp_path)
        await store.close()
        if damaged:
            assert proxy.refused["UploadPart"] >= 1
        else:
            assert (proxy.requests["UploadPart"], proxy.refused) == (3, {})


async def test_s3_object_of_exactly_whole_parts_has_no_empty_last_part(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    data = os.urandom(10 * MIB)
    async with s3_store.open_writer("src/s1/video.mp4") as writer:
        await writer.write(data[: 5 * MIB])  # the threshold, reached by a whole part
        await writer.write(data[5 * MIB :])
        await writer.commit(sha256=sha256(data), size=len(data))

    head = s3_client.head_object(Bucket=s3_bucket, Key=f"{S3_PREFIX}/src/s1/video.mp4")
    assert head["ETag"].endswith('-2"')
    assert await s3_store.read_bytes("src/s1/video.mp4") == data
    await assert_no_leftovers(s3_store, tmp_path)


async def test_s3_writer_cancelled_while_parts_are_in_flight_leaves_nothing(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    key = f"{S3_PREFIX}/src/s1/video.mp4"
    written = asyncio.Event()

    async def download() -> None:
        async with s3_store.open_writer("src/s1/video.mp4") as writer:
            await writer.write(os.urandom(16 * MIB))  # three parts go up at once
            written.set()
            await asyncio.sleep(60)  # the rest of the download, cut short below

    task = asyncio.ensure_future(download())
    await written.wait()
    await asyncio.to_thread(_parts_when_there, s3_client, s3_bucket, key, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert not await s3_store.exists("src/s1/video.mp4")
    await assert_no_leftovers(s3_store, tmp_path)


async def test_s3_multipart_upload_that_cannot_start_fails_the_write(
    s3_http_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    with S3FaultProxy(
        s3_http_endpoint,
        seed=3,
        rate=1.0,
        max_in_a_row=100,
        operations=frozenset({"CreateMultipartUpload"}),
        kinds=("500", "503", "drop_before"),  # S3 never created it (see the e2e test)
    ) as proxy:
        store = small_part_store(s3_bucket, proxy.url, tmp_path)
        with pytest.raises(
            StoreError, match=r"CreateMultipartUpload of s3://.*/src/s1/video\.mp4 failed"
        ):
            async with store.open_writer("src/s1/video.mp4") as writer:
                await writer.write(os.urandom(11 * MIB))
                await writer.commit(sha256="0" * 64, size=11 * MIB)
        await assert_no_leftovers(store, tmp_path)
        await store.close()
        await store.close()  # a second close does nothing
        assert proxy.requests["UploadPart"] == 0


async def test_s3_objects_share_the_part_pool_in_turn(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big object queues no more parts than the pool has workers (4 here), so a second
    object's parts go up as soon as a worker is free, not after all of the first's."""
    progress = threading.Condition()
    queued: list[tuple[str, int]] = []  # parts handed to the part pool, in turn
    started: list[tuple[str, int]] = []  # parts a worker began to send, in turn
    gate = threading.Semaphore(0)
    upload_part = s3parts.StreamingUpload._upload_part

    def object_name(upload: s3parts.StreamingUpload) -> str:
        return upload._key.rsplit("/", 1)[-1]

    def held(self: s3parts.StreamingUpload, number: int, *args: Any) -> Any:
        with progress:
            started.append((object_name(self), number))
            progress.notify_all()
        gate.acquire()
        return upload_part(self, number, *args)

    monkeypatch.setattr(s3parts.StreamingUpload, "_upload_part", held)
    part_pool = s3_store._part_pool
    submit = part_pool.submit

    def noting_submit(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = submit(function, *args, **kwargs)
        upload = getattr(function, "__self__", None)
        if isinstance(upload, s3parts.StreamingUpload):
            with progress:
                queued.append((object_name(upload), args[0]))
                progress.notify_all()
        return future

    monkeypatch.setattr(part_pool, "submit", noting_submit)

    async def until(condition: Callable[[], bool]) -> None:
        def wait() -> None:
            with progress:
                if not progress.wait_for(condition, timeout=120):
                    raise AssertionError(f"parts queued {queued}, started {started}")

        await asyncio.to_thread(wait)

    big, small = os.urandom(40 * MIB), os.urandom(10 * MIB)
    async with (
        s3_store.open_writer("src/s1/big.mp4") as big_writer,
        s3_store.open_writer("src/s2/small.mp4") as small_writer,
    ):
        try:
            await big_writer.write(big)  # eight parts of 5 MiB
            await until(lambda: len(started) == 4)  # every worker holds one
            await small_writer.write(small)  # two parts, queued behind the four running
            await until(lambda: ("small.mp4", 1) in queued)
            assert [part for part in queued if part[0] == "big.mp4"] == [
                ("big.mp4", number) for number in range(1, 5)
            ]  # the big object's other four wait outside the pool
            gate.release()  # one of the big object's parts ends; a worker is free
            await until(lambda: len(started) >= 5)
            assert started[4] == ("small.mp4", 1)
        finally:
            gate.release(100)  # whatever happened, no upload stays blocked
        await asyncio.gather(
            big_writer.commit(sha256=sha256(big), size=len(big)),
            small_writer.commit(sha256=sha256(small), size=len(small)),
        )

    assert await s3_store.read_bytes("src/s1/big.mp4") == big
    assert await s3_store.read_bytes("src/s2/small.mp4") == small


async def test_s3_multipart_upload_left_without_commit_is_aborted(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    key = f"{S3_PREFIX}/src/s1/video.mp4"
    with pytest.raises(RuntimeError, match="download broke off"):
        async with s3_store.open_writer("src/s1/video.mp4") as writer:
            await writer.write(os.urandom(11 * MIB))
            await asyncio.to_thread(_parts_when_there, s3_client, s3_bucket, key, 1)
            raise RuntimeError("download broke off")

    assert not await s3_store.exists("src/s1/video.mp4")
    await assert_no_leftovers(s3_store, tmp_path)


async def test_s3_a_part_that_keeps_failing_fails_the_write_before_its_commit(
    s3_http_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    with S3FaultProxy(
        s3_http_endpoint, seed=5, rate=1.0, max_in_a_row=100, operations=frozenset({"UploadPart"})
    ) as proxy:
        store = small_part_store(s3_bucket, proxy.url, tmp_path)
        with pytest.raises(StoreError, match=r"UploadPart of s3://.*/src/s1/video\.mp4.*transient"):
            async with store.open_writer("src/s1/video.mp4") as writer:
                await writer.write(os.urandom(6 * MIB))
                for _ in range(600):  # the download goes on until the upload's failure shows
                    await writer.write(b"x" * 1024)
                    await asyncio.sleep(0.05)
        await assert_no_leftovers(store, tmp_path)
        await store.close()
        assert proxy.requests["CompleteMultipartUpload"] == 0
        assert proxy.requests["UploadPart"] >= 3  # botocore's attempts, all of them failed


async def test_s3_small_object_is_one_put_with_metadata(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    data = b"a small log file\n"
    async with s3_store.open_writer("src/s1/device.log", content_type="text/plain") as writer:
        await writer.write(data)
        await writer.commit(sha256=sha256(data), size=len(data))

    head = s3_client.head_object(Bucket=s3_bucket, Key=f"{S3_PREFIX}/src/s1/device.log")
    assert "-" not in head["ETag"]
    assert head["Metadata"] == {"sha256": sha256(data)}
    assert head["ContentType"] == "text/plain"
    await assert_no_leftovers(s3_store, tmp_path)


async def test_s3_keys_live_under_the_prefix(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client
) -> None:
    await s3_store.put_bytes("a/manifest.json", b"{}")
    s3_client.put_object(Bucket=s3_bucket, Key="other/outside.txt", Body=b"not ours")

    listed = s3_client.list_objects_v2(Bucket=s3_bucket)
    assert sorted(item["Key"] for item in listed["Contents"]) == [
        f"{S3_PREFIX}/a/manifest.json",
        "other/outside.txt",
    ]
    assert await all_keys(s3_store) == ["a/manifest.json"]


async def test_s3_cleanup_aborts_stale_multipart_uploads_under_the_prefix(
    s3_store: S3Store, s3_bucket: str, s3_client: S3Client
) -> None:
    s3_client.create_multipart_upload(Bucket=s3_bucket, Key=f"{S3_PREFIX}/crashed/video.mp4")
    s3_client.create_multipart_upload(Bucket=s3_bucket, Key="someone-else/upload.bin")

    assert await s3_store.cleanup_incomplete(older_than=0) == 1

    remaining = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [upload["Key"] for upload in remaining] == ["someone-else/upload.bin"]


async def test_s3_never_shows_credentials(s3_endpoint: str, tmp_path: Path) -> None:
    secrets = [os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], "hunter2"]
    port = s3_endpoint.rsplit(":", 1)[1]
    store = S3Store(
        "no-such-bucket", endpoint_url=f"http://user:hunter2@127.0.0.1:{port}", spool_dir=tmp_path
    )
    with pytest.raises(StoreError) as caught:
        await store.put_bytes("k", b"x")
    await store.close()

    shown = " ".join([repr(store), store.description, str(caught.value)])
    assert not [secret for secret in secrets if secret in shown]
    assert "s3://no-such-bucket/k" in str(caught.value)


async def test_s3_missing_bucket_names_the_error_code(s3_endpoint: str, tmp_path: Path) -> None:
    store = S3Store("no-such-bucket", endpoint_url=s3_endpoint, spool_dir=tmp_path)
    with pytest.raises(StoreError, match=r"PutObject of s3://no-such-bucket/k.*NoSuchBucket"):
        await store.put_bytes("k", b"x")
    await store.close()


async def test_s3_unreachable_endpoint_is_transient(unused_tcp_port: int, tmp_path: Path) -> None:
    store = S3Store(
        "bucket", endpoint_url=f"http://127.0.0.1:{unused_tcp_port}", spool_dir=tmp_path
    )
    with pytest.raises(StoreError, match=r"cannot reach the endpoint.*transient"):
        await store.exists("k")
    await store.close()


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("SlowDown", 503, True),
        ("InternalError", 500, True),
        ("ServiceUnavailable", 503, True),
        ("AccessDenied", 403, False),
        ("NoSuchBucket", 404, False),
    ],
)
def test_s3_error_messages_say_when_retrying_can_help(
    code: str, status: int, transient: bool
) -> None:
    error = ClientError(
        {
            "Error": {"Code": code, "Message": "..."},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "HostId": "",
                "RequestId": "",
                "RetryAttempts": 0,
            },
        },
        "PutObject",
    )
    message = str(s3_error("PutObject", "bucket", "a/key", error))
    assert message.startswith(f"S3 PutObject of s3://bucket/a/key failed: {code} (HTTP {status})")
    assert ("transient" in message) is transient


def _holes_supported(folder: Path) -> bool:
    with tempfile.TemporaryFile(dir=folder) as probe:
        probe.write(b"x" * 8192)
        probe.flush()
        return holes.punch_hole(probe.fileno(), 0, 4096)


def _first_data_when_at_least(path: Path, offset: int) -> int:
    """Where the first bytes of ``path`` that are not a hole begin, once at ``offset`` or
    later. (Allocated block counts would not do: XFS keeps blocks reserved past the end of
    a growing file.)"""
    for _ in range(200):
        fd = os.open(path, os.O_RDONLY)
        try:
            first = os.lseek(fd, 0, os.SEEK_DATA)
        finally:
            os.close(fd)
        if first >= offset:
            return first
        time.sleep(0.05)
    raise AssertionError(f"{path} still has data at byte {first} after 10 s")


def _parts_when_there(s3_client: S3Client, bucket: str, key: str, count: int) -> list[PartTypeDef]:
    """The parts S3 holds for the one multipart upload to ``key``, once there are ``count``."""
    for _ in range(200):
        uploads = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        for upload in uploads:
            if upload["Key"] == key:
                listed = s3_client.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
                if len(listed.get("Parts", [])) >= count:
                    return listed["Parts"]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} parts of {key} arrived in 10 s")
