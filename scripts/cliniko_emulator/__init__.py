"""A local stand-in for Cliniko's contacts API: tests, the local run and benchmarks use it.

from cliniko_emulator import EmulatorServer, EmulatorControl
server = EmulatorServer(port=0, keys=["MS0xkey-au1"]).start()
control = EmulatorControl(server.url)
"""

from .app import Emulator
from .control import EmulatorControl
from .server import EmulatorServer

__all__ = ["Emulator", "EmulatorControl", "EmulatorServer"]
