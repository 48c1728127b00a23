"""Temp files of disk-backed writers never outlive a cancelled task."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from archiver.store.filesystem import FilesystemStore
from archiver.store.localfile import open_temp_file


@pytest.mark.parametrize("delay", [0, 0.001, 0.01])
async def test_cancelled_while_creating_the_temp_file_leaves_nothing(
    tmp_path: Path, delay: float
) -> None:
    task = asyncio.create_task(open_temp_file(tmp_path, "write-"))
    await asyncio.sleep(delay)
    task.cancel()
    try:
        _path, handle = await task
        await handle.close()
        _path.unlink()
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(0.1)
    assert list(tmp_path.iterdir()) == []


async def test_writer_cancelled_mid_write_leaves_no_temp_file(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "store")
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
    assert list((tmp_path / "store" / ".incoming").iterdir()) == []
    assert not await store.exists("a/b.bin")
