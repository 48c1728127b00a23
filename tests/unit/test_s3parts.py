"""The pieces of a streaming multipart upload that need no S3: part sizes, CRC32s, bodies."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from pathlib import Path

import pytest

from archiver.store.s3parts import (
    PARTS_PER_SIZE,
    PartChecksums,
    PartDigest,
    SpoolRange,
    part_size,
)


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def digest(data: bytes) -> PartDigest:
    return PartDigest(len(data), crc32(data), hashlib.md5(data, usedforsecurity=False).digest())


def test_part_size_doubles_every_thousand_parts_and_stays_within_s3_limits() -> None:
    base = 8 * 1024 * 1024
    assert part_size(1, base) == part_size(PARTS_PER_SIZE, base) == base
    assert part_size(PARTS_PER_SIZE + 1, base) == 2 * base
    assert part_size(10_000, base) <= 5 * 1024**3  # S3's largest part
    assert sum(part_size(n, base) for n in range(1, 10_001)) > 5 * 1000**4  # its largest object


@pytest.mark.parametrize("piece", [1, 7, 10, 33, 100])
def test_part_checksums_follow_part_boundaries_whatever_the_pieces(piece: int) -> None:
    data = os.urandom(95)
    checksums = PartChecksums(part_bytes=10)
    for start in range(0, len(data), 2 * piece):  # two pieces per write, as from the network
        checksums.add((data[start : start + piece], data[start + piece : start + 2 * piece]))

    assert checksums.finished == [digest(data[n : n + 10]) for n in range(0, 90, 10)]
    assert checksums.part(9, last=False) == digest(data[80:90])
    assert checksums.part(10, last=False) is None  # the part being filled is not finished
    assert checksums.part(10, last=True) == digest(data[90:])
    assert checksums.part(11, last=True) is None


def test_part_checksums_of_an_exact_multiple_have_no_last_part() -> None:
    checksums = PartChecksums(part_bytes=4)
    checksums.add((b"abcdefgh",))
    assert checksums.finished == [digest(b"abcd"), digest(b"efgh")]
    assert checksums.part(3, last=True) is None


def test_spool_range_reads_and_seeks_within_its_range_only(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        body = SpoolRange(fd, 3, 8)
        assert len(body) == 5
        assert body.read(2) == b"34"
        assert body.tell() == 2
        assert body.read() == b"567"
        assert body.read(10) == b""
        assert body.seek(0) == 0  # botocore rewinds a body to send it again
        assert body.read(100) == b"34567"
        assert body.seek(-1, os.SEEK_END) == 4
        assert body.read() == b"7"
        assert not hasattr(body, "fileno")  # or botocore would send the whole file
    finally:
        os.close(fd)


def test_spool_range_past_the_end_of_the_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    path.write_bytes(b"0123")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="ended at byte 4"):
            SpoolRange(fd, 2, 8).read()
    finally:
        os.close(fd)
