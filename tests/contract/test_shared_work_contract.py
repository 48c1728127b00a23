"""The SharedWork contract (archiver/state/shared.py): the queue and leases replicas share.

Only PostgreSQL shares its state; every test opens the database twice (two pools, as two
replicas would) on a database of its own, or skips when no server answers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from archiver.errors import StateError
from archiver.model import Session
from archiver.state import open_state
from archiver.state.shared import SharedWork, SharesWork, WorkItem

SRC = "perfecto"
LONG = timedelta(minutes=5)
SHORT = timedelta(milliseconds=300)
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def session(number: int, *, source: str = SRC, complete: bool = True) -> Session:
    return Session(
        source=source,
        session_id=f"s-{number:04d}",
        started_at=T0 + timedelta(minutes=number),
        complete=complete,
        record={"id": f"s-{number:04d}", "nested": {"ünïcode": [1, 2.5, None, True]}, "z": 0},
        locator=f"loc-{number}" if number % 2 else None,
    )


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[SharedWork, SharedWork]]:
    first = await open_state(postgres_url, replica="archiver-1")
    second = await open_state(postgres_url, replica="archiver-2")
    try:
        assert isinstance(first, SharesWork) and isinstance(second, SharesWork)
        yield first.shared_work(), second.shared_work()
    finally:
        await first.close()
        await second.close()


async def test_sqlite_shares_nothing() -> None:
    opened = await open_state("sqlite://:memory:")
    try:
        assert not isinstance(opened, SharesWork)
    finally:
        await opened.close()


async def test_one_lister_at_a_time(replicas: tuple[SharedWork, SharedWork]) -> None:
    one, two = replicas
    assert not await one.listing_active(SRC)
    assert await one.take_listing(SRC, "a", LONG)
    assert await one.listing_active(SRC)
    assert await two.listing_active(SRC)
    assert not await two.take_listing(SRC, "b", LONG)
    assert await one.take_listing(SRC, "a", LONG), "the holder takes it again"
    assert await two.take_listing("devrev", "b", LONG), "each source has a lease of its own"
    await two.release_listing(SRC, "b")  # not b's: nothing happens
    assert not await two.take_listing(SRC, "b", LONG)
    await one.release_listing(SRC, "a")
    assert not await one.listing_active(SRC)
    assert await two.take_listing(SRC, "b", LONG)


async def test_an_expired_listing_lease_goes_to_another(
    replicas: tuple[SharedWork, SharedWork],
) -> None:
    one, two = replicas
    assert await one.take_listing(SRC, "a", SHORT)
    assert not await two.take_listing(SRC, "b", SHORT)
    await asyncio.sleep(SHORT.total_seconds() + 0.2)
    assert not await one.listing_active(SRC)
    assert await two.take_listing(SRC, "b", LONG)
    assert not await one.take_listing(SRC, "a", LONG), "the lapsed holder lost it"


async def test_claims_the_oldest_with_its_data_intact(
    replicas: tuple[SharedWork, SharedWork],
) -> None:
    one, two = replicas
    await one.enqueue([WorkItem(session=session(n), overdue=n == 1) for n in (3, 1, 2)])
    assert await two.queued(SRC) == 3
    claimed = await two.claim(SRC, "b", LONG)
    assert claimed == WorkItem(session=session(1), overdue=True)
    assert claimed.session.started_at.tzinfo is not None
    assert [await one.claim(SRC, "a", LONG) for _ in range(3)] == [
        WorkItem(session=session(2)),
        WorkItem(session=session(3)),
        None,
    ]
    assert await one.claim("devrev", "a", LONG) is None, "another source's queue is empty"
    assert await one.queued(SRC) == 3, "claimed sessions stay queued until finished"


async def test_enqueueing_again_keeps_the_claim(replicas: tuple[SharedWork, SharedWork]) -> None:
    one, two = replicas
    await one.enqueue([WorkItem(session=session(1))])
    assert await two.claim(SRC, "b", LONG) is not None
    await one.enqueue([WorkItem(session=session(1), overdue=True), WorkItem(session=session(2))])
    assert await one.claim(SRC, "a", LONG) == WorkItem(session=session(2))
    assert await one.claim(SRC, "a", LONG) is None
    assert await one.queued(SRC) == 2


async def test_concurrent_claims_never_share_a_session(
    replicas: tuple[SharedWork, SharedWork],
) -> None:
    one, two = replicas
    await one.enqueue([WorkItem(session=session(n)) for n in range(60)])

    async def drain(work: SharedWork, holder: str) -> list[str]:
        taken = []
        while (item := await work.claim(SRC, holder, LONG)) is not None:
            taken.append(item.session.session_id)
        return taken

    drained = await asyncio.gather(*(drain(w, f"h{i}") for i, w in enumerate([one, two] * 4)))
    everything = [session_id for taken in drained for session_id in taken]
    assert sorted(everything) == [f"s-{n:04d}" for n in range(60)]
    assert sum(1 for taken in drained if taken) > 1, "the claims were spread"


async def test_a_lapsed_claim_goes_to_another_and_renewal_keeps_it(
    replicas: tuple[SharedWork, SharedWork],
) -> None:
    one, two = replicas
    await one.enqueue([WorkItem(session=session(1)), WorkItem(session=session(2))])
    assert await one.claim(SRC, "a", SHORT) == WorkItem(session=session(1))
    assert await one.claim(SRC, "a", SHORT) == WorkItem(session=session(2))
    assert await one.take_listing(SRC, "a", SHORT)
    for _ in range(3):  # kept alive past several lease lengths
        await asyncio.sleep(SHORT.total_seconds() / 2)
        assert await one.renew("a", SHORT) == 3
    assert await two.claim(SRC, "b", LONG) is None
    assert not await two.take_listing(SRC, "b", LONG)
    await asyncio.sleep(SHORT.total_seconds() + 0.2)  # a stops renewing: it died
    assert await two.claim(SRC, "b", LONG) == WorkItem(session=session(1))
    assert await two.take_listing(SRC, "b", LONG)
    assert await one.renew("a", SHORT) == 1, "a keeps only what nobody took"
    assert await two.renew("b", LONG) == 2


async def test_finish_and_put_off(replicas: tuple[SharedWork, SharedWork]) -> None:
    one, two = replicas
    await one.enqueue([WorkItem(session=session(n)) for n in (1, 2, 3)])
    first = await one.claim(SRC, "a", LONG)
    second = await one.claim(SRC, "a", LONG)
    assert first is not None and second is not None
    await two.finish(SRC, first.session.session_id)  # whoever holds it
    await two.put_off(SRC, second.session.session_id, "b", SHORT)  # not b's: no effect
    await one.put_off(SRC, second.session.session_id, "a", SHORT)
    assert await two.claim(SRC, "b", LONG) == WorkItem(session=session(3))
    assert await two.claim(SRC, "b", LONG) is None, "put off for now"
    await asyncio.sleep(SHORT.total_seconds() + 0.2)
    assert await two.claim(SRC, "b", LONG) == WorkItem(session=session(2))
    assert await one.queued(SRC) == 2
    await one.finish(SRC, "s-0002")
    await one.finish(SRC, "s-0003")
    await one.finish(SRC, "s-0003")  # finishing twice is harmless
    assert await one.queued(SRC) == 0


async def test_read_only_state_refuses_to_claim(postgres_url: str) -> None:
    writer = await open_state(postgres_url)
    reader = await open_state(postgres_url, read_only=True)
    try:
        assert isinstance(reader, SharesWork) and isinstance(writer, SharesWork)
        await writer.shared_work().enqueue([WorkItem(session=session(1))])
        with pytest.raises(StateError, match="read-only"):
            await reader.shared_work().claim(SRC, "r", LONG)
        assert await reader.shared_work().queued(SRC) == 1
    finally:
        await reader.close()
        await writer.close()


async def test_the_request_budget_is_shared(postgres_url: str) -> None:
    first = await open_state(postgres_url, replica="archiver-1")
    second = await open_state(postgres_url, replica="archiver-2")
    try:
        assert isinstance(first, SharesWork) and isinstance(second, SharesWork)
        one, two = first.request_budget(), second.request_budget()
        turns = [await budget.reserve("devrev", 0.5) for budget in (one, two, one, two)]
        # One turn every half second, whoever asks: each a half second after the one before.
        for earlier, later in itertools.pairwise(turns):
            assert later - earlier == pytest.approx(0.5, abs=0.05)
        assert turns[0] == pytest.approx(0.0, abs=0.05)
        assert await two.reserve("perfecto", 0.5) == pytest.approx(0.0, abs=0.05)
        await one.hold_off("perfecto", 5)
        assert await two.reserve("perfecto", 0.5) == pytest.approx(5.0, abs=0.1)
        await asyncio.sleep(2.1)  # the devrev turns taken are past: the next is now
        assert await two.reserve("devrev", 0.5) == pytest.approx(0.0, abs=0.05)
    finally:
        await first.close()
        await second.close()
