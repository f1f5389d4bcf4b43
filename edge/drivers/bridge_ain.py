"""`bridge.ain`: one analog input of a board, read every `period_s` (`READ`, PROTOCOL.md).

Readings: `raw` (0..1023 counts of the 10-bit ADC) and `volts` (raw x vref / 1024, as the
ATmega328P's ADC converts: raw = V_in x 1024 / V_ref, at most 1023).
Read on the unit's clock rather than by the board's `PERIOD`, so a board reset
changes nothing here. A board that is gone puts the module in ERROR.
"""

from __future__ import annotations

from typing import Any

from edge.driver import CommandRun, Driver
from edge.drivers.bridge_boards import CONNECT_WAIT_S, board_for, release
from firmware_bridge.board import Board
from firmware_bridge.transport import BoardNotConnected, BoardRefused
from lecis.driver_specs import BridgeAinSettings, settings_of
from lecis.errors import CommandFailed, DeviceError

ADC_STEPS = 1024


class BridgeAinDriver(Driver):
    board: Board
    settings: BridgeAinSettings

    async def initialize(self) -> None:
        self.settings = s = settings_of(self.dcd, BridgeAinSettings)
        self.board = board_for(self.resources, self.dcd.module, s.port, s.baudrate, self.host.clock, 2.0)
        try:
            await self.board.transport.wait_connected(CONNECT_WAIT_S)
            await self.board.read(s.channel)
        except BoardRefused as exc:
            await release(self.resources, self.dcd.module, s.port)
            raise DeviceError("bad_channel", f"{self.dcd.module}: the board on {s.port} refused "
                              f"{s.channel}: {exc.kind} {exc.detail}") from None
        except BoardNotConnected:
            await release(self.resources, self.dcd.module, s.port)
            raise

    async def run(self) -> None:
        clock, s = self.host.clock, self.settings
        due = clock.monotonic()
        while True:
            raw = await self.board.read(s.channel)  # BoardNotConnected (DeviceLost): ERROR
            self.host.reading({"raw": float(raw), "volts": round(raw * s.vref / ADC_STEPS, 4)})
            due = max(due + s.period_s, clock.monotonic())
            await clock.sleep(due - clock.monotonic())

    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        raise CommandFailed(f"{self.dcd.module} (bridge.ain) has no command {name!r}")

    async def close(self) -> None:
        if hasattr(self, "board"):
            await release(self.resources, self.dcd.module, self.settings.port)
