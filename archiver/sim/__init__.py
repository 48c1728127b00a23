"""Built-in vendor simulators: real HTTP servers on loopback for ``archiver demo`` and tests.

They follow the vendors' documented APIs closely enough that a source which works against
a simulator meets no surprise in the documented behaviour of the real service.
"""

from archiver.sim.devrev import DevRevSimConfig, DevRevSimulator
from archiver.sim.ekran import EkranSimConfig, EkranSimulator
from archiver.sim.perfecto import PerfectoSimConfig, PerfectoSimulator, SimFile
from archiver.sim.requestlog import SimRequest
from archiver.sim.runner import SimulatorThread, running, serve
from archiver.sim.testmo import TestmoSimConfig, TestmoSimulator
from archiver.sim.testobject import TestObjectSimConfig, TestObjectSimulator

__all__ = [
    "DevRevSimConfig",
    "DevRevSimulator",
    "EkranSimConfig",
    "EkranSimulator",
    "PerfectoSimConfig",
    "PerfectoSimulator",
    "SimFile",
    "SimRequest",
    "SimulatorThread",
    "TestObjectSimConfig",
    "TestObjectSimulator",
    "TestmoSimConfig",
    "TestmoSimulator",
    "running",
    "serve",
]
