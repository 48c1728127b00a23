"""What archiver knows of one vendor, in one place: its :class:`SourceSpec`.

Each vendor's module (``archiver/sources/<vendor>.py``) declares its settings, its source
and its ``SPEC``; :data:`archiver.sources.registry.SOURCES` lists the specs, and the config
reader, the source factory, ``archiver demo``, the test fixtures and the generated docs go
through that list. Nothing else names a vendor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from archiver.settings import SourceSettings

if TYPE_CHECKING:
    from archiver.sources import SourceFactory

SimulatorT = TypeVar("SimulatorT")
SimConfigT = TypeVar("SimConfigT")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoRun:
    """One vendor's simulator as ``archiver demo`` runs it."""

    settings: SourceSettings
    """The source's settings, pointed at the simulator."""
    urls: Mapping[str, str]
    """Each origin the simulator serves, by what it serves (``API``, ``files``)."""
    finish: Callable[[], object]
    """Completes the sessions held back, for the demo's second pass."""


DemoHook = Callable[[int, int], AbstractAsyncContextManager[DemoRun]]
"""``demo(sessions, held_back)``: starts the vendor's simulator on loopback with ``sessions``
sessions, ``held_back`` of them not complete yet; yields the :class:`DemoRun` and stops it."""


@dataclass(frozen=True, slots=True)
class SimulatorFixture(Generic[SimulatorT, SimConfigT]):
    """How the tests build the vendor's simulator: ``build(config=None, **overrides)``.

    ``tests/support/simulators.py`` makes the ``<name>_sim``, ``<name>_sim_factory``,
    ``<name>_sim_async`` and ``<name>_sim_async_factory`` fixtures from it.
    """

    simulator: Callable[[SimConfigT], SimulatorT]
    config: Callable[[], SimConfigT]
    """The simulator's configuration (a dataclass): called without arguments, the small
    default dataset."""

    def build(self, config: SimConfigT | None = None, **overrides: Any) -> SimulatorT:
        chosen: Any = config if config is not None else self.config()
        return self.simulator(dataclasses.replace(chosen, **overrides))


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSpec:
    """One vendor: its name (the ``[sources.NAME]`` table, the store's top folder, the
    metrics' ``vendor`` label), its settings, how its source is made, its simulator, and
    what its API does not offer (for the docs; each manifest says it per session)."""

    name: str
    title: str
    """The vendor's name as people write it (``DevRev``)."""
    settings: type[SourceSettings]
    factory: SourceFactory
    demo: DemoHook
    fixture: Callable[[], SimulatorFixture[Any, Any]]
    """The simulator, for the tests (a function, so that the daemon never loads it)."""
    not_offered: str
    """What the vendor's API does not offer, said once for the docs."""
