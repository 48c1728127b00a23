"""Session claims in the store: one writer at a time for a session's objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from archiver.claims import Claim, ClaimedElsewhere, claim_key, claim_session, is_claim_key
from archiver.store.memory import MemoryStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=60)
PREFIX = "perfecto/s1"


async def claim(store: MemoryStore, writer: str, at: datetime = NOW) -> Claim:
    return await claim_session(store, PREFIX, writer=writer, now=at, lease=LEASE)


async def test_the_first_writer_gets_generation_zero_and_the_usual_keys() -> None:
    store = MemoryStore()
    first = await claim(store, "writer-a")
    assert first == Claim(0) and first.base(PREFIX) == PREFIX
    assert [key async for key in store.list_keys(PREFIX)] == [claim_key(PREFIX, 0)]
    assert await claim(store, "writer-a", NOW + 2 * LEASE) == first  # its own, after a restart


async def test_another_writer_waits_while_the_claim_is_young() -> None:
    store = MemoryStore()
    await claim(store, "writer-a")
    with pytest.raises(ClaimedElsewhere, match="writer-a"):
        await claim(store, "writer-b", NOW + LEASE - timedelta(seconds=1))
    assert [key async for key in store.list_keys(PREFIX)] == [claim_key(PREFIX, 0)]


async def test_a_stale_claim_is_taken_over_in_a_folder_of_its_own() -> None:
    store = MemoryStore()
    await claim(store, "writer-a")
    taken = await claim(store, "writer-b", NOW + LEASE)
    assert taken == Claim(1) and taken.base(PREFIX) == f"{PREFIX}/attempts/0001"
    with pytest.raises(ClaimedElsewhere, match="writer-b"):
        await claim(store, "writer-a", NOW + LEASE)  # the old writer does not take it back


async def test_an_unreadable_claim_counts_as_expired() -> None:
    store = MemoryStore()
    await store.put_bytes(claim_key(PREFIX, 0), b"not json")
    assert await claim(store, "writer-b") == Claim(1)


def test_claim_keys_are_told_apart_from_evidence() -> None:
    assert is_claim_key(PREFIX, claim_key(PREFIX, 12))
    assert not is_claim_key(PREFIX, f"{PREFIX}/claims/notes.txt")
    assert not is_claim_key(PREFIX, f"{PREFIX}/videos/claims.json")
    assert not is_claim_key("perfecto/s2", claim_key(PREFIX, 0))
