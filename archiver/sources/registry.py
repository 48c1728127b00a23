"""Every source archiver has, in the order the docs, the example and ``archiver demo`` show
them. A new vendor is one more :class:`~archiver.sources.spec.SourceSpec` here."""

from __future__ import annotations

from archiver.sources import (
    browserstack,
    devicefarm,
    devrev,
    ekran,
    perfecto,
    saucelabs,
    testmo,
    testobject,
)
from archiver.sources.spec import SourceSpec

SOURCES: tuple[SourceSpec, ...] = (
    perfecto.SPEC,
    devrev.SPEC,
    testobject.SPEC,
    testmo.SPEC,
    ekran.SPEC,
    saucelabs.SPEC,
    browserstack.SPEC,
    devicefarm.SPEC,
)


def spec_named(name: str) -> SourceSpec:
    """The spec of the source called ``name``; KeyError if there is none."""
    for spec in SOURCES:
        if spec.name == name:
            return spec
    raise KeyError(name)
