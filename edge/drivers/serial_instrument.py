"""What every serial instrument driver shares: its port settings and the open line."""

from __future__ import annotations

from edge.driver import Driver, DriverResources, ModuleHost
from edge.serial_line import SerialLine
from lecis.dcd import Dcd
from lecis.errors import DeviceLost


class SerialInstrumentDriver(Driver):
    """A driver that owns one serial line, opened in initialize() and closed in close()."""

    def __init__(self, dcd: Dcd, host: ModuleHost, resources: DriverResources) -> None:
        super().__init__(dcd, host, resources)
        settings = dcd.settings
        self.port: str = settings["port"]
        self.baudrate: int = settings.get("baudrate", 9600)
        self.period_s: float = settings["period_s"]
        self.timeout_s: float = settings.get("timeout_s") or 3.0
        self._line: SerialLine | None = None

    async def close(self) -> None:
        line, self._line = self._line, None
        if line is not None:
            await line.close()

    def _port(self) -> SerialLine:
        if self._line is None:
            raise DeviceLost(f"serial port {self.port} is not open; INIT the module first")
        return self._line
