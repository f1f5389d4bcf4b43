"""`gpio.switch`: one on/off output (valve, aeration, heater relay) with a timed `pulse`.

DCD settings: `pin` (BCM number), `active_high`, `max_on_s`.
Commands: `on`, `off`, `pulse(seconds)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.driver import CommandRun, Driver, DriverResources, ModuleHost
from edge.drivers.gpio_output import GpioOutput
from lecis.clock import iso_ts
from lecis.dcd import Dcd
from lecis.errors import CommandFailed, DeviceError


@dataclass(frozen=True)
class SwitchSettings:
    pin: int
    active_high: bool
    max_on_s: float


def setting(dcd: Dcd, key: str, kinds: tuple[type, ...], what: str, default: Any = ...) -> Any:
    """One setting of `dcd`, type-checked; DeviceError naming the file and key when wrong or missing."""
    value = dcd.settings.get(key)
    if value is None:
        if default is ...:
            raise DeviceError(
                "bad_settings", f"{dcd.source}: module {dcd.module} needs settings.{key} ({what})"
            )
        return default
    # bool is an int in Python: `pin: true` must not pass as pin 1.
    if isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds):
        raise DeviceError(
            "bad_settings", f"{dcd.source}: module {dcd.module}: settings.{key} must be {what}, got {value!r}"
        )
    return value


def positive(dcd: Dcd, key: str, default: Any = ...) -> float | None:
    """A setting that must be a number above 0 (or the default when absent)."""
    value = setting(dcd, key, (int, float), "a number above 0", default)
    if value is None:
        return None
    if value <= 0:
        raise DeviceError(
            "bad_settings", f"{dcd.source}: module {dcd.module}: settings.{key} must be above 0, got {value}"
        )
    return float(value)


def switch_settings(dcd: Dcd) -> SwitchSettings:
    max_on = positive(dcd, "max_on_s")
    assert max_on is not None
    return SwitchSettings(
        pin=setting(dcd, "pin", (int,), "a BCM GPIO number"),
        active_high=setting(dcd, "active_high", (bool,), "true or false", True),
        max_on_s=max_on,
    )


class GpioOutputDriver(Driver):
    """What switch and pump share: one GpioOutput, timed runs, pause/resume, the max-on cut."""

    def __init__(self, dcd: Dcd, host: ModuleHost, resources: DriverResources) -> None:
        super().__init__(dcd, host, resources)
        self.output: GpioOutput | None = None
        self._run: CommandRun | None = None
        self._run_speed = 1.0
        self._paused = False
        self._limited = False

    def _open_output(self, pin: int, active_high: bool, max_on_s: float, **extra: Any) -> GpioOutput:
        return GpioOutput(
            self.dcd.module, pin, clock=self.host.clock, max_on_s=max_on_s, active_high=active_high,
            pin_factory=self.resources.pin_factory, on_limit=self._limit_reached, **extra,
        )

    def _out(self) -> GpioOutput:
        if self.output is None:
            raise CommandFailed(f"{self.dcd.module} is not initialized; send INIT first")
        return self.output

    def _limit_reached(self, seconds_on: float) -> None:
        assert self.output is not None
        self.host.event(
            "warning", "max_on",
            f"{self.dcd.module} turned off after max_on_s={self.output.max_on_s:g} s",
        )
        self.host.outputs_changed()
        if self._run is not None:
            self._limited = True
            self._run.finish("max_on_s")

    def _switch(self, on: bool, speed: float = 1.0) -> dict[str, Any]:
        out = self._out()
        was = (out.is_on, out.speed)
        if on:
            out.on(speed)
        else:
            out.off()
        if (out.is_on, out.speed) != was:
            self.host.outputs_changed()
        return {"on": out.is_on}

    async def _timed(self, seconds: float, run: CommandRun, speed: float = 1.0) -> dict[str, Any]:
        """Output on for `seconds` of running time; off again however the wait ends."""
        self._out()
        self._run, self._run_speed, self._paused, self._limited = run, speed, False, False
        try:
            self._switch(True, speed)
            ran = await run.wait(seconds)
        finally:
            self._run = None
            self._switch(False)
        result: dict[str, Any] = {"ran_s": round(ran, 3)}
        if self._limited:
            result["limited_by"] = "max_on_s"
        return result

    def pause(self) -> None:
        if self._run is not None and self.output is not None and self.output.is_on:
            self._paused = True
            self._switch(False)

    def resume(self) -> None:
        # Not after a max_on_s cut: that run is ending, it must not switch on again.
        if self._run is not None and self._paused and not self._limited:
            self._paused = False
            self._switch(True, self._run_speed)

    def safe(self) -> None:
        if self.output is None:
            return
        was_on = self.output.is_on
        self.output.off()
        if was_on:
            self.host.outputs_changed()

    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"on": bool(self.output and self.output.is_on)}
        since = self.output.on_since if self.output is not None else None
        if since is not None:
            out["on_since"] = iso_ts(since)
        return out

    async def close(self) -> None:
        output, self.output = self.output, None
        if output is not None:
            output.close()


class GpioSwitchDriver(GpioOutputDriver):
    """A valve, aeration or heater relay on one GPIO pin."""

    timed_commands = frozenset({"pulse"})

    async def initialize(self) -> None:
        settings = switch_settings(self.dcd)
        self.output = self._open_output(settings.pin, settings.active_high, settings.max_on_s)

    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        if name == "on":
            return self._switch(True)
        if name == "off":
            return self._switch(False)
        if name == "pulse":
            return await self._timed(float(args["seconds"]), run)
        raise CommandFailed(f"{self.dcd.module} (gpio.switch) has no command {name!r}")
