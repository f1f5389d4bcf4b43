"""`bridge`: a pump or valve on an output of a microcontroller board (firmware_bridge/PROTOCOL.md).

The module is a `gpio.pump` whose output is a board channel instead of a
Raspberry Pi pin: the same GpioOutput (max_on_s, min_off_s stretches), the
same volume log, lease, ESTOP and on_controller_loss handling by the module
around it. The board's firmware enforces a second limit: the output falls
back to its default when the unit stops refreshing it (`watchdog_s`), and
never outlasts what is left of max_on_s.

Channels: D2/D4/D7/D8 on/off, D3 PWM duty (`speed` 0..1 -> 0..255), S1 a
stepper (`speed` 0..1 -> 0..max_rate_hz steps/s, `reverse` for direction).
An ERR from the board (a channel this firmware does not drive) is a
`rejected` reply; a board that is gone puts the module in ERROR.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge.driver import CommandRun
from edge.drivers.bridge_boards import CONNECT_WAIT_S, board_for, release
from edge.drivers.gpio_output import GpioOutput
from edge.drivers.gpio_pump import GpioPumpDriver
from edge.drivers.gpio_switch import min_off
from firmware_bridge.board import Board, command_of
from firmware_bridge.transport import BoardNotConnected, BoardRefused
from lecis.driver_specs import BridgeSettings, PumpSettings, settings_of
from lecis.driver_specs.bridge import is_variable
from lecis.errors import CommandFailed, CommandInvalid, CommandRejected, CommandUnknown


class BoardChannel:
    """What GpioOutput drives: on(), off(), value (0..1), close(), mapped to the board's frames."""

    def __init__(self, board: Board, settings: BridgeSettings) -> None:
        self.board = board
        self.settings = settings
        self.channel = settings.channel
        self.output: GpioOutput | None = None

    def _limit_s(self) -> float | None:
        if self.output is None:
            return None
        # Exactly what is left of max_on_s, no margin: a unit that dies now must not leave the output
        # on past its limit. The board counts max_ms from when each try leaves (Board._send), so its
        # cut comes at the limit (at most 2 ms after); the unit's own cut comes at the same moment.
        return self.output.budget()

    def _raw(self, speed: float) -> int:
        kind = command_of(self.channel)
        if kind == "SET":
            return 1 if speed > 0 else 0
        if kind == "PWM":
            return max(0, min(255, round(speed * 255)))
        rate = max(0, min(2000, round(speed * self.settings.max_rate_hz)))
        return -rate if self.settings.reverse else rate

    def on(self) -> None:
        self.value = 1.0

    def off(self) -> None:
        self.value = 0.0

    @property
    def value(self) -> float:
        wanted = self.board.outputs.get(self.channel)
        return 0.0 if wanted is None or wanted.value == 0 else 1.0

    @value.setter
    def value(self, speed: float) -> None:
        raw = self._raw(speed)
        self.board.want(self.channel, raw, self._limit_s() if raw else None, self.settings.watchdog_s)

    def close(self) -> None:
        self.off()


class BridgeDriver(GpioPumpDriver):
    """A pump or valve on a board channel; everything else as `gpio.pump`."""

    board: Board
    bridge: BridgeSettings

    def pump_settings(self) -> PumpSettings:
        b = self.bridge
        return PumpSettings(pin=0, active_high=True, max_on_s=b.max_on_s, min_off_s=b.min_off_s,
                            ml_per_s=b.ml_per_s, max_ml_per_hour=b.max_ml_per_hour,
                            pwm=is_variable(b.channel), pwm_frequency_hz=0.0)

    def open_pump_output(self, s: PumpSettings, **callbacks: Any) -> GpioOutput:
        self.channel = BoardChannel(self.board, self.bridge)
        output = self._open_output(0, True, s.max_on_s, min_off(s), pwm=s.pwm, device=self.channel,
                                   **callbacks)
        self.channel.output = output
        return output

    async def initialize(self) -> None:
        self.bridge = b = settings_of(self.dcd, BridgeSettings)
        self.board = board_for(self.resources, self.dcd.module, b.port, b.baudrate, self.host.clock,
                               b.watchdog_s)
        try:
            await self.board.transport.wait_connected(CONNECT_WAIT_S)
        except BoardNotConnected:
            await release(self.resources, self.dcd.module, b.port)
            raise
        self.board.listeners.append(self.host.event)
        await super().initialize()

    async def run(self) -> None:
        await self.board.transport.wait_lost()
        raise BoardNotConnected(self.board.transport.problem)

    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        if name not in type(self).timed_commands:
            result = await super().execute(name, args, run)
            await self._confirm()
            return result
        # A timed run: a refusal by the board ends it at once (the output never moved).
        refused: list[CommandRejected] = []
        watch = asyncio.get_running_loop().create_task(self._refusal(run, refused))
        try:
            result = await super().execute(name, args, run)
        finally:
            watch.cancel()
        if refused:
            raise CommandFailed(refused[0].message, refused[0].param)
        await self._confirm()  # done once the board has the output off, as a GPIO pin would be
        return result

    async def _refusal(self, run: CommandRun, refused: list[CommandRejected]) -> None:
        await asyncio.sleep(0)  # the run switches the output on first
        try:
            await self._confirm()
        except CommandRejected as exc:
            refused.append(exc)
            run.finish("refused by the board")
        except BoardNotConnected:
            pass  # the module's run() sees the board gone and puts the module in ERROR

    async def _confirm(self) -> None:
        wanted = self.board.outputs.get(self.bridge.channel)
        if wanted is None:
            return
        t = self.board.transport
        try:
            await self.board.confirm(wanted, t.timeout_s * t.tries + 0.5)
        except BoardRefused as exc:
            if self.output is not None:
                self.output.off()
                self.host.outputs_changed()
            message = (f"{self.dcd.module}: the board on {self.bridge.port} refused channel "
                       f"{self.bridge.channel}: {exc.kind} {exc.detail}".rstrip())
            error: CommandRejected = CommandUnknown(message) if exc.kind == "unknown_command" \
                else CommandInvalid(message, "channel" if exc.kind == "bad_channel" else None)
            raise error from None

    def outputs(self) -> dict[str, Any]:
        out = super().outputs()
        wanted = self.board.outputs.get(self.bridge.channel) if hasattr(self, "board") else None
        out["raw"] = wanted.value if wanted is not None else 0
        return out

    async def close(self) -> None:
        await super().close()
        if hasattr(self, "board"):
            if self.host.event in self.board.listeners:
                self.board.listeners.remove(self.host.event)
            await release(self.resources, self.dcd.module, self.bridge.port)
