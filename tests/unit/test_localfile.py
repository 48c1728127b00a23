"""Temp files (and their descriptors) of disk-backed writers never outlive a cancelled task."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from archiver.store import localfile
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


async def test_pieces_are_written_in_order_whatever_writev_takes_at_a_time(
    tmp_path: Path, unnamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: Sequence[bytes]) -> int:
        calls.append(len(buffers))
        taken, budget = [], 10_007  # a short write, often in the middle of a piece
        for buffer in buffers:
            taken.append(memoryview(buffer)[:budget])
            budget -= len(taken[-1])
            if not budget:
                break
        return writev(fd, taken)

    monkeypatch.setattr(os, "writev", short_writev)
    pieces = [bytes([number % 256]) * (number * 37 % 3000) for number in range(3000)]
    data = b"".join(pieces)
    store = FilesystemStore(tmp_path / "store", unnamed_temps=unnamed)
    async with store.open_writer("a/pieces.bin") as writer:
        await writer.write(b"head")  # held in memory, then written with the next pieces
        await writer.write(*pieces[:1500])
        await writer.write(*pieces[1500:])
        await writer.commit(sha256=hashlib.sha256(b"head" + data).hexdigest(), size=len(data) + 4)
    assert await store.read_bytes("a/pieces.bin") == b"head" + data
    assert max(calls) <= localfile.MAX_BUFFERS
