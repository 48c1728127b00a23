"""Deterministic file bodies for the simulators: any size, streamed, never held in memory.

A body is named (``"perfecto/7/5ad48.../video-0.mp4"``) and sized; the same name and size
always give the same bytes, so a test can know a file's SHA-256 without downloading it.

The bytes are one 64 KiB block per name (derived from BLAKE2b, computed once and cached)
repeated, with the block's index written over its first 8 bytes. Repetition keeps
generation at memory-copy speed (a GiB in well under a second); the index makes every
block differ, so a client that drops, repeats or reorders a block gets a wrong digest.
An optional ``magic`` prefix (see :func:`magic_for`) makes files start like the format
their content type announces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import lru_cache

BLOCK_SIZE = 64 * 1024
DEFAULT_CHUNK_SIZE = 256 * 1024
_INDEX_BYTES = 8
_MAGIC = {
    "video/mp4": b"\x00\x00\x00\x18ftypmp42",
    "application/zip": b"PK\x03\x04",
    "application/vnd.tcpdump.pcap": b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff\xe0",
    "application/pdf": b"%PDF-1.7\n",
}


def magic_for(content_type: str) -> bytes:
    """The signature bytes files of ``content_type`` start with (empty when none applies)."""
    return _MAGIC.get(content_type.split(";")[0].strip().lower(), b"")


def iter_chunks(
    name: str, size: int, chunk_size: int = DEFAULT_CHUNK_SIZE, *, magic: bytes = b""
) -> Iterator[bytes]:
    """The body of ``name`` in chunks of ``chunk_size`` bytes (the last may be shorter)."""
    if size < 0 or chunk_size <= 0:
        raise ValueError("size must be >= 0 and chunk_size > 0")
    for start in range(0, size, chunk_size):
        yield _read(name, start, min(size, start + chunk_size), magic)


def content_bytes(name: str, size: int, *, magic: bytes = b"") -> bytes:
    """The whole body at once: for small files (screenshots, PDFs, test expectations)."""
    return _read(name, 0, size, magic)


@lru_cache(maxsize=4096)
def digest(name: str, size: int, *, magic: bytes = b"") -> str:
    """SHA-256 (hex) of the body of ``name``, computed chunk by chunk."""
    sha = hashlib.sha256()
    for chunk in iter_chunks(name, size, 4 * 1024 * 1024, magic=magic):
        sha.update(chunk)
    return sha.hexdigest()


@lru_cache(maxsize=256)
def _base_block(name: str) -> bytes:
    key = hashlib.blake2b(name.encode(), digest_size=32).digest()
    return b"".join(
        hashlib.blake2b(counter.to_bytes(4, "big"), key=key).digest()
        for counter in range(BLOCK_SIZE // 64)
    )


def _read(name: str, start: int, end: int, magic: bytes) -> bytes:
    """Bytes ``[start, end)`` of the body of ``name``."""
    base = memoryview(_base_block(name))
    out = bytearray(end - start)
    position = start
    while position < end:
        index, offset = divmod(position, BLOCK_SIZE)
        stop = min(end, (index + 1) * BLOCK_SIZE)
        at = position - start
        out[at : at + stop - position] = base[offset : offset + stop - position]
        if offset < _INDEX_BYTES:
            stamp = index.to_bytes(_INDEX_BYTES, "big")[offset : offset + stop - position]
            out[at : at + len(stamp)] = stamp
        position = stop
    if start < len(magic):
        prefix = magic[start : min(end, len(magic))]
        out[: len(prefix)] = prefix
    return bytes(out)
