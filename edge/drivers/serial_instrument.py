"""What every serial instrument driver shares: port settings, the open line, the measuring loop."""

from __future__ import annotations

import abc
import asyncio

from edge.driver import Driver, DriverResources, ModuleHost
from edge.drivers.warnings import InstrumentWarnings
from edge.serial_line import SerialLine
from lecis.dcd import Dcd
from lecis.driver_specs import SerialSettings, settings_of
from lecis.errors import DeviceLost


class SerialInstrumentDriver(Driver):
    """A driver that owns one serial line, opened in initialize() and closed in close().

    `run()` takes a reading every `period_s` (or as lines come, when not paced)
    under `_lock`, which device commands take too, so the two never interleave.
    """

    def __init__(self, dcd: Dcd, host: ModuleHost, resources: DriverResources) -> None:
        super().__init__(dcd, host, resources)
        settings = settings_of(dcd, SerialSettings)  # checked by the spec's rules; DeviceError if not
        self.port = settings.port
        self.baudrate = settings.baudrate
        self.period_s = settings.period_s
        self.timeout_s = settings.timeout_s
        self._line: SerialLine | None = None
        self._lock = asyncio.Lock()
        self._warnings = InstrumentWarnings(host)

    @property
    def _paced(self) -> bool:
        """Whether readings are asked for every period (False: the instrument streams them)."""
        return True

    @abc.abstractmethod
    async def _measure(self) -> dict[str, float] | None:
        """One reading's values, or None when there is none (a warning says why)."""

    async def run(self) -> None:
        clock = self.host.clock
        due = clock.monotonic()
        try:
            while True:
                async with self._lock:
                    values = await self._measure()
                if values is not None:
                    self._warnings.good_reading()
                    self.host.reading(values)
                else:
                    self._warnings.tick()
                if self._paced:
                    # A slow instrument delays the next reading rather than bunching them.
                    due = max(due + self.period_s, clock.monotonic())
                    await clock.sleep(due - clock.monotonic())
        except Exception:
            # The counts of an unfinished episode are told before the module reports why it stopped
            # (not on cancellation: that is the unit stopping the module, which may be shutting down).
            self._warnings.end_all("the measuring stopped")
            raise

    async def close(self) -> None:
        line, self._line = self._line, None
        if line is not None:
            await line.close()

    def _port(self) -> SerialLine:
        if self._line is None:
            raise DeviceLost(f"serial port {self.port} is not open; INIT the module first")
        return self._line
