"""Session claims: one writer at a time for a session's objects in a shared store.

Two archivers with states of their own (or, later, replicas that lost track of each other)
may reach for the same session. Before it writes the first object of a session's first
archive, a writer claims the session in the store: ``<session>/claims/<generation>.json``,
created only if absent (the store's ``put_bytes_if_absent``, the primitive the ledger uses),
naming the writer and when it claimed. Then:

* no claim yet: generation 0 is created; its objects go to the session's usual keys;
* the newest claim is this writer's (the same state, after a restart): it goes on in that
  generation and writes over its own unfinished objects, nobody else's;
* the newest claim is another writer's and younger than ``lease``: the session is left to it
  for now (held back, tried again on a later pass);
* it is older than ``lease`` without a manifest (its writer died, or is very slow): the next
  generation is created, whose objects go under ``<session>/attempts/<generation>/``, so they
  never replace an object the older writer may still be writing.

Whichever writer then stores the session's first manifest (created only if absent, too) has
archived it; the other's objects are left unlisted, which ``verify`` reports. Safety rests
on the conditional creates alone; the lease decides only when a stalled session is taken
over. ``verify`` does not count a session's claims as unlisted objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from archiver.errors import NotReady
from archiver.ledger import parse_rfc3339
from archiver.model import rfc3339
from archiver.store import Store

CLAIMS = "claims/"
ATTEMPTS = "attempts/"
GENERATION_DIGITS = 4


class ClaimedElsewhere(NotReady):
    """Another writer is archiving this session; it is tried again on a later pass."""


@dataclass(frozen=True, slots=True)
class Claim:
    generation: int

    def base(self, prefix: str) -> str:
        """Where this generation's objects go, under the session's folder ``prefix``."""
        if self.generation == 0:
            return prefix
        return f"{prefix}/{ATTEMPTS}{self.generation:0{GENERATION_DIGITS}d}"


def claim_key(prefix: str, generation: int) -> str:
    return f"{prefix}/{CLAIMS}{generation:0{GENERATION_DIGITS}d}.json"


def is_claim_key(folder: str, key: str) -> bool:
    """Whether ``key`` is a claim of the session whose folder is ``folder``."""
    return claim_generation(folder, key) is not None


def claim_generation(folder: str, key: str) -> int | None:
    """The generation ``key`` claims in the session whose folder is ``folder``, if any."""
    name = key.removeprefix(f"{folder}/{CLAIMS}")
    if name == key or not name.endswith(".json") or not name[:-5].isdigit():
        return None
    return int(name[:-5])


async def claim_session(
    store: Store, prefix: str, *, writer: str, now: datetime, lease: timedelta
) -> Claim:
    """This writer's claim on the session at ``prefix``; ClaimedElsewhere if another
    writer's claim stands."""
    generation = 0  # most sessions were never claimed: try before looking
    for _ in range(4):  # a create lost to another writer: look again
        if await _create(store, prefix, generation, writer=writer, now=now):
            return Claim(generation)
        listed = [
            claim_generation(prefix, key) async for key in store.list_keys(f"{prefix}/{CLAIMS}")
        ]
        generations = sorted(generation for generation in listed if generation is not None)
        if not generations:
            continue
        newest = generations[-1]
        holder, claimed_at = _read(await store.read_created(claim_key(prefix, newest)))
        if holder == writer:
            return Claim(newest)
        if claimed_at is not None and now - claimed_at < lease:
            raise ClaimedElsewhere(
                f"another archiver ({holder}) has been archiving it since {rfc3339(claimed_at)}"
            )
        generation = newest + 1
    raise ClaimedElsewhere("other archivers keep claiming it at the same moment")


async def _create(
    store: Store, prefix: str, generation: int, *, writer: str, now: datetime
) -> bool:
    body = json.dumps({"writer": writer, "claimed_at": rfc3339(now), "generation": generation})
    # Not durable on its own: the session's manifest, written after it, is its barrier, and a
    # claim a crash took back is simply made again by the same writer.
    return await store.put_bytes_if_absent(
        claim_key(prefix, generation),
        body.encode() + b"\n",
        content_type="application/json",
        durable=False,
    )


def _read(data: bytes) -> tuple[str | None, datetime | None]:
    try:
        raw = json.loads(data)
        return str(raw["writer"]), parse_rfc3339(str(raw["claimed_at"]))
    except (ValueError, KeyError, TypeError):
        return None, None  # unreadable: treated as an expired claim of nobody's
