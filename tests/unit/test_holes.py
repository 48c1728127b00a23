"""Punching a range out of a spool file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archiver.store.holes import punch_hole

MIB = 1024 * 1024


def test_a_punched_range_reads_as_zeros_and_the_rest_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    data = os.urandom(3 * MIB)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    try:
        if not punch_hole(fd, MIB, 2 * MIB):
            pytest.skip(f"the file system of {tmp_path} cannot punch holes")
    finally:
        os.close(fd)

    assert path.read_bytes() == data[:MIB] + bytes(MIB) + data[2 * MIB :]
    assert path.stat().st_size == 3 * MIB


def test_an_empty_range_or_a_read_only_descriptor_punches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    data = os.urandom(MIB)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert not punch_hole(fd, 0, MIB)
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDWR)
    try:
        assert not punch_hole(fd, MIB // 2, MIB // 2)
    finally:
        os.close(fd)
    assert path.read_bytes() == data
