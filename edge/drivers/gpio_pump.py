"""`gpio.pump`: a dosing pump on one GPIO pin, optionally speed-controlled by PWM.

DCD settings: `pin`, `active_high`, `max_on_s`, `min_off_s`, `ml_per_s`
(flow at full speed; None until calibrated), `max_ml_per_hour` (None: no
volume limit), `pwm`, `pwm_frequency_hz`.
Commands: `on(speed?)`, `off`, `run(seconds, speed?)`, `dose(ml, speed?)`.

Volume is counted from what was actually pumped (on-time x ml_per_s x
speed), whatever command switched the pump, over a rolling hour. The hour is
a hard cap: a dose that does not fit is rejected with the figures, `on` and
`run` are cut by the output's watchdog once the rest of the hour's volume is
delivered (`limited_by: max_ml_per_hour`). The volume is kept in the unit's
durable state, so a restart does not forget it.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from edge.driver import CommandRun
from edge.drivers.gpio_output import MIN_ON_S, GpioOutput
from edge.drivers.gpio_switch import GpioOutputDriver, min_off
from lecis.driver_specs import PumpSettings, settings_of
from lecis.errors import CommandFailed, CommandInvalid, CommandStateForbidden

if TYPE_CHECKING:
    from edge.durable import DurableState

HOUR_S = 3600.0
_SLACK_ML = 1e-6  # float noise must not refuse a dose that fits exactly


class VolumeLog:
    """Millilitres delivered, stamped on a monotonic clock; sums a rolling window.

    With a DurableState, every entry is also written to disk (wall-clock
    stamped) and what the last process pumped is loaded at creation.
    """

    def __init__(self, window_s: float = HOUR_S, store: DurableState | None = None, module: str = "",
                 now: float = 0.0) -> None:
        self.window_s = window_s
        self.store = store
        self.module = module
        self._entries: deque[tuple[float, float]] = deque()
        if store is not None:
            for age, ml in sorted(store.volume(module), reverse=True):
                self._entries.append((now - age, ml))

    def add(self, at: float, ml: float) -> None:
        if ml > 0:
            self._entries.append((at, ml))
        if self.store is not None:
            self.store.add_volume(self.module, ml)

    def started(self, ml_per_s: float, max_s: float) -> None:
        """The pump turned on: on disk, in case the process dies before it turns off."""
        if self.store is not None:
            self.store.segment_started(self.module, ml_per_s, max_s)

    def total(self, now: float) -> float:
        while self._entries and self._entries[0][0] <= now - self.window_s:
            self._entries.popleft()
        return sum(ml for _, ml in self._entries)


def _n(value: float) -> str:
    return f"{round(value, 3):g}"


class GpioPumpDriver(GpioOutputDriver):
    """A peristaltic or dosing pump; `dose` needs a flow calibration (ml_per_s)."""

    timed_commands = frozenset({"run", "dose"})

    def pump_settings(self) -> PumpSettings:
        """The settings the pump's rules use (a board's pump gives its own: edge.drivers.bridge)."""
        return settings_of(self.dcd, PumpSettings)

    def open_pump_output(self, s: PumpSettings, **callbacks: Any) -> GpioOutput:
        return self._open_output(s.pin, s.active_high, s.max_on_s, min_off(s), pwm=s.pwm,
                                 pwm_frequency_hz=s.pwm_frequency_hz, **callbacks)

    async def initialize(self) -> None:
        self.settings = s = self.pump_settings()
        # Kept for the life of the unit process, so a RESET or re-INIT of the
        # module does not wipe the last hour's volume.
        logs = self.resources.extra.setdefault("gpio.pump.volume", {})
        volume = logs.get(self.dcd.module)
        if volume is None:
            volume = logs[self.dcd.module] = VolumeLog(
                store=self.resources.durable, module=self.dcd.module, now=self.host.clock.monotonic())
        self.volume: VolumeLog = volume
        self.output = self.open_pump_output(
            s, on_segment=self._delivered, on_segment_start=self._started, allowance=self._hour_allowance,
        )
        if s.max_ml_per_hour is not None and s.ml_per_s is None:
            self.host.event(
                "warning", "uncalibrated",
                f"{self.dcd.module}: max_ml_per_hour={_n(s.max_ml_per_hour)} cannot be enforced "
                "without ml_per_s; calibrate the pump and set ml_per_s in its DCD",
            )

    # ---- volume -----------------------------------------------------------------------------
    def _delivered(self, seconds: float, speed: float) -> None:
        if self.settings.ml_per_s is not None:
            self.volume.add(self.host.clock.monotonic(), seconds * speed * self.settings.ml_per_s)

    def _started(self, speed: float, max_seconds: float) -> None:
        if self.settings.ml_per_s is not None:
            self.volume.started(self.settings.ml_per_s * speed, max_seconds)

    def ml_left(self) -> float | None:
        """Millilitres the hour still allows (None without a volume limit)."""
        limit = self.settings.max_ml_per_hour
        if limit is None or self.settings.ml_per_s is None:
            return None
        left = limit - self.ml_last_hour()
        return 0.0 if left <= _SLACK_ML else left

    def _hour_allowance(self, speed: float) -> tuple[float, str] | None:
        left = self.ml_left()
        rate = self.settings.ml_per_s
        if left is None or rate is None or speed <= 0:
            return None
        return left / (rate * speed), "max_ml_per_hour"

    def limit_event(self, reason: str) -> None:
        self.host.event(
            "warning", reason,
            f"{self.dcd.module} turned off at max_ml_per_hour={_n(self.settings.max_ml_per_hour or 0)}: "
            f"{_n(self.ml_last_hour())} ml pumped in the last hour; it may pump again as earlier volume "
            "leaves the hour",
        )

    def ml_last_hour(self) -> float:
        """Millilitres pumped in the last hour of clock time, the stretch in progress included."""
        rate = self.settings.ml_per_s
        if rate is None:
            return 0.0
        done = self.volume.total(self.host.clock.monotonic())
        if self.output is None:
            return done
        seconds, speed = self.output.segment_now()
        return done + seconds * speed * rate

    def _check_hour(self, ml: float, what: str, param: str) -> None:
        limit = self.settings.max_ml_per_hour
        if limit is None:
            return
        total = self.ml_last_hour() + ml
        if total > limit + _SLACK_ML:
            raise CommandInvalid(
                f"{what} would make {_n(total)} ml in the last hour; max_ml_per_hour is {_n(limit)}", param
            )

    # ---- commands ---------------------------------------------------------------------------
    def _speed(self, args: dict[str, Any]) -> float:
        speed = args.get("speed")
        if speed is None:
            return 1.0
        if not self.settings.pwm:
            raise CommandInvalid(
                f"{self.dcd.module} is not driven by PWM (pwm: false), so it runs at full speed only; "
                "leave out speed", "speed",
            )
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.0 <= speed <= 1.0:
            raise CommandInvalid(f"speed must be a number from 0 to 1, got {speed!r}", "speed")
        return float(speed)

    def check(self, name: str, args: dict[str, Any]) -> None:
        speed = self._speed(args)
        rate = self.settings.ml_per_s
        module = self.dcd.module
        if name != "off" and speed > 0:
            self.check_stretch()
        if name == "dose":
            if rate is None:
                raise CommandStateForbidden(
                    f"{module} has no flow calibration (ml_per_s); "
                    "dose in ml is refused until it is calibrated"
                )
            if speed == 0.0:
                raise CommandInvalid("a dose needs speed above 0", "speed")
            ml = float(args["ml"])
            seconds = ml / (rate * speed)
            if seconds > self.settings.max_on_s:
                # Cut short by the watchdog, it would deliver less than asked: refuse it now.
                raise CommandInvalid(
                    f"dose of {_n(ml)} ml takes {_n(seconds)} s at {_n(rate * speed)} ml/s, longer than "
                    f"max_on_s={_n(self.settings.max_on_s)}; dose less at a time or at a higher speed", "ml",
                )
            out = self.output
            if out is not None and not out.is_on and seconds > out.budget() + 1e-9:
                rest = out.rest_needed()
                raise CommandStateForbidden(
                    f"dose of {_n(ml)} ml takes {_n(seconds)} s but {module} has only {_n(out.budget())} s "
                    f"of max_on_s={_n(self.settings.max_on_s)} left in this on-stretch; "
                    f"wait {_n(rest or 0)} s (min_off_s) for a fresh stretch or dose less"
                )
            self._check_hour(ml, f"dose of {_n(ml)} ml", "ml")
        elif name in ("on", "run") and speed > 0 and self.settings.max_ml_per_hour is not None:
            used = self.ml_last_hour()
            allowed = self._hour_allowance(speed)
            if allowed is not None and allowed[0] < MIN_ON_S:
                raise CommandStateForbidden(
                    f"{module} already pumped {_n(used)} ml in the last hour; max_ml_per_hour is "
                    f"{_n(self.settings.max_ml_per_hour)}; wait until earlier doses leave the hour"
                )

    async def execute(self, name: str, args: dict[str, Any], run: CommandRun) -> dict[str, Any]:
        if name == "on":
            return self._switch(True, self._speed(args))
        if name == "off":
            return self._switch(False)
        if name == "run":
            return await self._timed(float(args["seconds"]), run, self._speed(args))
        if name == "dose":
            rate = self.settings.ml_per_s
            if rate is None:
                raise CommandFailed(f"{self.dcd.module} has no flow calibration (ml_per_s)", "ml")
            speed = self._speed(args)
            result = await self._timed(float(args["ml"]) / (rate * speed), run, speed)
            return {"ml": round(result["ran_s"] * rate * speed, 3), **result}
        raise CommandFailed(f"{self.dcd.module} (gpio.pump) has no command {name!r}")

    def outputs(self) -> dict[str, Any]:
        out = super().outputs()
        out["speed"] = self.output.speed if self.output is not None else 0.0
        return out
