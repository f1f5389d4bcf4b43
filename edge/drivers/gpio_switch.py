"""`gpio.switch`: one on/off output (valve, aeration, heater relay) with a timed `pulse`.

DCD settings: `pin` (BCM number), `active_high`, `max_on_s`, `min_off_s`.
Commands: `on`, `off`, `pulse(seconds)`.

Every command that switches on is checked against the output's stretch
(see edge.drivers.gpio_output): one whose stretch has used up `max_on_s` is
rejected, kind `state`, saying how long the output must rest first.
"""

from __future__ import annotations

from typing import Any

from edge.driver import CommandRun, Driver, DriverResources, ModuleHost
from edge.drivers.gpio_output import DEFAULT_MIN_OFF_S, MIN_ON_S, GpioOutput, OutputLimitReached
from lecis.clock import iso_ts
from lecis.dcd import Dcd
from lecis.driver_specs import SwitchSettings, settings_of
from lecis.errors import CommandFailed, CommandStateForbidden


def switch_settings(dcd: Dcd) -> SwitchSettings:
    """The module's settings, typed and checked by the driver spec (lecis.driver_specs.gpio)."""
    return settings_of(dcd, SwitchSettings)


def min_off(settings: SwitchSettings) -> float:
    """`min_off_s`, where null means the driver's default (DEFAULT_MIN_OFF_S)."""
    return DEFAULT_MIN_OFF_S if settings.min_off_s is None else settings.min_off_s


class GpioOutputDriver(Driver):
    """What switch and pump share: one GpioOutput, timed runs, pause/resume, the max-on cut."""

    def __init__(self, dcd: Dcd, host: ModuleHost, resources: DriverResources) -> None:
        super().__init__(dcd, host, resources)
        self.output: GpioOutput | None = None
        self._run: CommandRun | None = None
        self._run_speed = 1.0
        self._paused = False
        self._limited: str | None = None  # the limit that cut the running command

    def _open_output(self, pin: int, active_high: bool, max_on_s: float, min_off_s: float,
                     **extra: Any) -> GpioOutput:
        store, module = self.resources.durable, self.dcd.module
        output = GpioOutput(
            module, pin, clock=self.host.clock, max_on_s=max_on_s, min_off_s=min_off_s,
            active_high=active_high, pin_factory=self.resources.pin_factory, on_limit=self._limit_reached,
            on_switch=None if store is None else lambda on, used: store.put_stretch(module, used, on),
            **extra,
        )
        # A restart inside an on-stretch does not give the output a fresh max_on_s.
        kept = self.resources.extra.setdefault("gpio.stretch", {}).pop(module, None)
        if kept is not None:
            used, closed_at = kept
            output.restore(used, self.host.clock.monotonic() - closed_at)
        elif store is not None and (left := store.stretch(module)) is not None:
            output.restore(*left)
        return output

    async def close(self) -> None:
        output, self.output = self.output, None
        if output is not None:
            output.close()
            # RESET builds a new driver in the same process: it takes up the same stretch.
            self.resources.extra.setdefault("gpio.stretch", {})[self.dcd.module] = (
                output.on_for(), self.host.clock.monotonic())

    def _out(self) -> GpioOutput:
        if self.output is None:
            raise CommandFailed(f"{self.dcd.module} is not initialized; send INIT first")
        return self.output

    def check_stretch(self) -> None:
        """Refuse a switch-on while the output's stretch has no on-time left (before anything moves)."""
        out = self.output
        if out is not None and not out.is_on and out.budget() < MIN_ON_S:
            raise CommandStateForbidden(out.limit_message())

    def _limit_reached(self, reason: str, seconds_on: float) -> None:
        assert self.output is not None
        if reason == "max_on_s":
            self.host.event(
                "warning", "max_on",
                f"{self.dcd.module} turned off after max_on_s={self.output.max_on_s:g} s",
            )
        else:
            self.limit_event(reason)
        self.host.outputs_changed()
        if self._run is not None:
            self._limited = reason
            self._run.finish(reason)

    def limit_event(self, reason: str) -> None:
        """The event for a cut by a driver's own limit (see GpioOutput's allowance)."""
        self.host.event("warning", reason, f"{self.dcd.module} turned off by {reason}")

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
        out = self._out()
        self._run, self._run_speed, self._paused, self._limited = run, speed, False, None
        try:
            self._switch(True, speed)
            ran = await run.wait(seconds)
        finally:
            self._run = None
            out.hold(False)
            self._switch(False)
        result: dict[str, Any] = {"ran_s": round(ran, 3)}
        if self._limited:
            result["limited_by"] = self._limited
        return result

    def pause(self) -> None:
        # A paused command keeps its stretch: its on-time before and after the pause adds up.
        if self._run is not None and self.output is not None and self.output.is_on:
            self._paused = True
            self.output.hold(True)
            self._switch(False)

    def resume(self) -> None:
        # Not after a limit cut: that run is ending, it must not switch on again.
        if self._run is not None and self._paused and not self._limited:
            self._paused = False
            try:
                self._switch(True, self._run_speed)
            except OutputLimitReached as exc:  # no time left by some limit: the run ends here
                self._limited = exc.reason
                self._run.finish(exc.reason)
            if self.output is not None:
                self.output.hold(False)

    def safe(self) -> None:
        if self.output is None:
            return
        was_on = self.output.is_on
        self.output.hold(False)
        self.output.off()
        if was_on:
            self.host.outputs_changed()

    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"on": bool(self.output and self.output.is_on)}
        since = self.output.on_since if self.output is not None else None
        if since is not None:
            out["on_since"] = iso_ts(since)
        return out


class GpioSwitchDriver(GpioOutputDriver):
    """A valve, aeration or heater relay on one GPIO pin."""

    timed_commands = frozenset({"pulse"})

    async def initialize(self) -> None:
        settings = switch_settings(self.dcd)
        self.output = self._open_output(settings.pin, settings.active_high, settings.max_on_s,
                                        min_off(settings))

    def check(self, name: str, args: dict[str, Any]) -> None:
        if name in ("on", "pulse"):
            self.check_stretch()

    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        if name == "on":
            return self._switch(True)
        if name == "off":
            return self._switch(False)
        if name == "pulse":
            return await self._timed(float(args["seconds"]), run)
        raise CommandFailed(f"{self.dcd.module} (gpio.switch) has no command {name!r}")
