"""Built-in vendor simulators: real HTTP servers on loopback for ``archiver demo`` and tests.

They follow the vendors' documented APIs closely enough that a source which works against
a simulator meets no surprise in the documented behaviour of the real service.
"""

from archiver_sim.browserstack import BrowserStackSimConfig, BrowserStackSimulator
from archiver_sim.devicefarm import DeviceFarmSimConfig, DeviceFarmSimulator
from archiver_sim.devrev import DevRevSimConfig, DevRevSimulator
from archiver_sim.ekran import EkranSimConfig, EkranSimulator
from archiver_sim.perfecto import PerfectoSimConfig, PerfectoSimulator, SimFile
from archiver_sim.requestlog import SimRequest
from archiver_sim.runner import SimulatorThread, running, serve
from archiver_sim.saucelabs import SauceLabsSimConfig, SauceLabsSimulator
from archiver_sim.testmo import TestmoSimConfig, TestmoSimulator
from archiver_sim.testobject import TestObjectSimConfig, TestObjectSimulator

__all__ = [
    "BrowserStackSimConfig",
    "BrowserStackSimulator",
    "DevRevSimConfig",
    "DevRevSimulator",
    "DeviceFarmSimConfig",
    "DeviceFarmSimulator",
    "EkranSimConfig",
    "EkranSimulator",
    "PerfectoSimConfig",
    "PerfectoSimulator",
    "SauceLabsSimConfig",
    "SauceLabsSimulator",
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
