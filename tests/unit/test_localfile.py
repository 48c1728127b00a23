"""Temp files (and their descriptors) of disk-backed writers never outlive a cancelled task."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from archiver.store.filesystem import INCOMING, FilesystemStore
from tests.support.openfiles import open_files_under


@pytest.fixture(params=[True, False], ids=["unnamed-temps", "named-temps"])
def unnamed(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.mark.parametrize("delay", [0, 0.0005, 0.001, 0.01])
async def test_cancelled_while_the_temp_file_is_being_created_leaves_nothing(
    tmp_path: Path, delay: float, unnamed: bool
) -> None:
    store = FilesystemStore(tmp_path / "store", unnamed_temps=unnamed)

    async def write_once() -> None:
        async with store.open_writer("a/b.bin") as writer:
            await writer.write(b"x" * 65536)
            await asyncio.sleep(10)

    task = asyncio.create_task(write_once())
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((tmp_path / "store" / INCOMING).iterdir()) == []
    assert open_files_under(tmp_path) == []


async def test_writer_cancelled_mid_write_leaves_no_temp_file(
    tmp_path: Path, unnamed: bool
) -> None:
    store = FilesystemStore(tmp_path / "store", unnamed_temps=unnamed)
    started = asyncio.Event()

    async def write_forever() -> None:
        async with store.open_writer("a/b.bin") as writer:
            while True:
                await writer.write(b"x" * 65536)
                started.set()

    task = asyncio.create_task(write_forever())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((tmp_path / "store" / INCOMING).iterdir()) == []
    assert open_files_under(tmp_path) == []
    assert not await store.exists("a/b.bin")


async def test_cancelled_commit_leaves_nothing_half_done(tmp_path: Path, unnamed: bool) -> None:
    store = FilesystemStore(tmp_path / "store", unnamed_temps=unnamed)
    for delay in (0, 0.0002, 0.0005, 0.001, 0.002):

        async def write_and_commit() -> None:
            async with store.open_writer("a/c.bin") as writer:
                await writer.write(b"y" * 1000)
                await writer.commit(sha256="", size=1000)

        task = asyncio.create_task(write_and_commit())
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert list((tmp_path / "store" / INCOMING).iterdir()) == []
        assert open_files_under(tmp_path) == []
        stored = await store.size("a/c.bin")
        assert stored in (None, 1000)
