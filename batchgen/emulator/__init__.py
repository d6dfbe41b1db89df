"""A local emulator of Oxen.ai's hosted inference API (queue, events, models, history, repos).

It shares no code with the batchgen client on purpose, so a bug cannot hide by being symmetric.
"""

from batchgen.emulator.app import create_app, state_of_app
from batchgen.emulator.clock import Clock, ManualClock, OffsetClock, SystemClock
from batchgen.emulator.config import EmulatorConfig, FaultConfig, LatencyConfig
from batchgen.emulator.counters import Counters
from batchgen.emulator.model import Generation
from batchgen.emulator.repos import Commit, StoredFile
from batchgen.emulator.server import Emulator, run_emulator
from batchgen.emulator.timeline import Marks, Timeline
from batchgen.emulator.workspaces import WorkspaceInfo

__all__ = [
    "Clock",
    "Commit",
    "Counters",
    "Emulator",
    "EmulatorConfig",
    "FaultConfig",
    "Generation",
    "LatencyConfig",
    "ManualClock",
    "Marks",
    "OffsetClock",
    "StoredFile",
    "SystemClock",
    "Timeline",
    "WorkspaceInfo",
    "create_app",
    "run_emulator",
    "state_of_app",
]
