"""A simulated `gpio.switch` or `gpio.pump`: the unit's own rules, on simulated time.

Reproduced where a script meets them (edge.drivers.gpio_switch, gpio_pump,
gpio_output): the on-stretch limit `max_on_s` (off gaps shorter than
`min_off_s` do not end a stretch) cuts the output and refuses a switch-on
with no time left; a pump's `max_ml_per_hour` over a rolling hour refuses a
dose that does not fit and cuts `on`/`run` when the hour's volume is pumped;
a dose longer than `max_on_s` is refused; `speed` needs `pwm: true`; timed
commands (`pulse`, `run`, `dose`) answer when they end, with `ran_s` and
`limited_by` when a limit cut them. Messages are the unit's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.simulate.clock import SimClock
from hub.simulate.events import Agenda, Scheduled
from lecis.dcd import Dcd
from lecis.driver_specs.bridge import is_variable
from lecis.errors import CommandInvalid, CommandStateForbidden

DEFAULT_MIN_OFF_S = 1.0  # edge.drivers.gpio_output.DEFAULT_MIN_OFF_S
MIN_ON_S = 0.001  # edge.drivers.gpio_output.MIN_ON_S
HOUR_S = 3600.0
_SLACK_ML = 1e-6
TIMED = frozenset({"pulse", "run", "dose"})

OnChange = Callable[[bool, float], None]  # (on, speed)
OnEvent = Callable[[str, str, str], None]  # (level, code, message)
OnDone = Callable[[dict[str, Any]], None]  # the timed command's result


def _n(value: float) -> str:
    return f"{round(value, 3):g}"


@dataclass
class _Run:
    cmd: str
    speed: float
    started: float
    on_done: OnDone
    end: Scheduled
    limited_by: str | None = None


class SimOutput:
    """One output module; `check(cmd, args)` raises as the unit would, `execute` acts."""

    def __init__(self, dcd: Dcd, clock: SimClock, agenda: Agenda, on_change: OnChange,
                 on_event: OnEvent) -> None:
        s = dcd.settings
        self.module = dcd.module
        self.is_pump = dcd.driver in ("gpio.pump", "bridge")
        self.max_on_s = float(s["max_on_s"])
        self.min_off_s = DEFAULT_MIN_OFF_S if s.get("min_off_s") is None else float(s["min_off_s"])
        self.ml_per_s: float | None = s.get("ml_per_s")
        self.max_ml_per_hour: float | None = s.get("max_ml_per_hour")
        # A board's PWM and stepper channels take a speed as a PWM pump does (lecis.driver_specs.bridge).
        self.pwm = bool(s.get("pwm", False)) or (dcd.driver == "bridge" and is_variable(str(s["channel"])))
        self.clock, self.agenda = clock, agenda
        self._on_change, self._on_event = on_change, on_event
        self.speed = 0.0
        self._used = 0.0
        self._on_at: float | None = None
        self._off_at: float | None = None
        self._segment_at: float | None = None
        self._volume: deque[tuple[float, float]] = deque()
        self._watchdog: Scheduled | None = None
        self.run: _Run | None = None
        self.pumped_ml = 0.0

    # ---- state ----------------------------------------------------------------------------------
    @property
    def is_on(self) -> bool:
        return self._on_at is not None

    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"on": self.is_on}
        if self.is_pump:
            out["speed"] = self.speed
        return out

    def _now(self) -> float:
        return self.clock.monotonic()

    def _stretch_open(self, now: float) -> bool:
        if self._on_at is not None:
            return True
        return self._off_at is not None and now - self._off_at < self.min_off_s

    def on_for(self) -> float:
        now = self._now()
        if not self._stretch_open(now):
            return 0.0
        return self._used + (now - self._on_at if self._on_at is not None else 0.0)

    def budget(self) -> float:
        return max(0.0, self.max_on_s - self.on_for())

    def rest_needed(self) -> float:
        if self._on_at is not None:
            return self.min_off_s
        if self._off_at is None:
            return 0.0
        return max(0.0, self.min_off_s - (self._now() - self._off_at))

    def limit_message(self) -> str:
        return (f"{self.module} has been on for max_on_s={self.max_on_s:g} s in this stretch; it must stay "
                f"off {self.rest_needed():.3g} s more (min_off_s={self.min_off_s:g}) before it can be "
                "switched on again")

    def ml_last_hour(self) -> float:
        if self.ml_per_s is None:
            return 0.0
        now = self._now()
        while self._volume and self._volume[0][0] <= now - HOUR_S:
            self._volume.popleft()
        done = sum(ml for _, ml in self._volume)
        if self._segment_at is None:
            return done
        return done + (now - self._segment_at) * self.speed * self.ml_per_s

    def _hour_allowance(self, speed: float) -> float | None:
        if self.max_ml_per_hour is None or self.ml_per_s is None or speed <= 0:
            return None
        left = self.max_ml_per_hour - self.ml_last_hour()
        return 0.0 if left <= _SLACK_ML else left / (self.ml_per_s * speed)

    # ---- the unit's checks ----------------------------------------------------------------------
    def check(self, cmd: str, args: dict[str, Any]) -> None:
        speed = self._speed(args)
        if cmd != "off" and speed > 0 and not self.is_on and self.budget() < MIN_ON_S:
            raise CommandStateForbidden(self.limit_message())
        if not self.is_pump:
            return
        rate = self.ml_per_s
        if cmd == "dose":
            if rate is None:
                raise CommandStateForbidden(f"{self.module} has no flow calibration (ml_per_s); "
                                            "dose in ml is refused until it is calibrated")
            if speed == 0.0:
                raise CommandInvalid("a dose needs speed above 0", "speed")
            ml = float(args["ml"])
            seconds = ml / (rate * speed)
            if seconds > self.max_on_s:
                raise CommandInvalid(
                    f"dose of {_n(ml)} ml takes {_n(seconds)} s at {_n(rate * speed)} ml/s, longer than "
                    f"max_on_s={_n(self.max_on_s)}; dose less at a time or at a higher speed", "ml")
            if not self.is_on and seconds > self.budget() + 1e-9:
                raise CommandStateForbidden(
                    f"dose of {_n(ml)} ml takes {_n(seconds)} s but {self.module} has only "
                    f"{_n(self.budget())} s of max_on_s={_n(self.max_on_s)} left in this on-stretch; "
                    f"wait {_n(self.rest_needed())} s (min_off_s) for a fresh stretch or dose less")
            limit = self.max_ml_per_hour
            if limit is not None and self.ml_last_hour() + ml > limit + _SLACK_ML:
                raise CommandInvalid(
                    f"dose of {_n(ml)} ml would make {_n(self.ml_last_hour() + ml)} ml in the last hour; "
                    f"max_ml_per_hour is {_n(limit)}", "ml")
        elif cmd in ("on", "run") and speed > 0:
            allowed = self._hour_allowance(speed)
            if allowed is not None and allowed < MIN_ON_S:
                raise CommandStateForbidden(
                    f"{self.module} already pumped {_n(self.ml_last_hour())} ml in the last hour; "
                    f"max_ml_per_hour is {_n(self.max_ml_per_hour or 0)}; wait until earlier doses "
                    "leave the hour")

    def _speed(self, args: dict[str, Any]) -> float:
        speed = args.get("speed")
        if speed is None:
            return 1.0
        if not self.pwm:
            raise CommandInvalid(f"{self.module} is not driven by PWM (pwm: false), so it runs at full "
                                 "speed only; leave out speed", "speed")
        return float(speed)

    # ---- acting ---------------------------------------------------------------------------------
    def execute(self, cmd: str, args: dict[str, Any], on_done: OnDone) -> dict[str, Any] | None:
        """Carry out a checked command: its result now, or None when `on_done` will get it later."""
        speed = self._speed(args)
        if cmd == "on":
            self.switch(speed)
            return {"on": self.is_on}
        if cmd == "off":
            self.switch(0.0)
            return {"on": self.is_on}
        if cmd == "dose":
            assert self.ml_per_s is not None
            seconds = float(args["ml"]) / (self.ml_per_s * speed)
        else:
            seconds = float(args["seconds"])
        self._start_run(cmd, seconds, speed, on_done)
        return None

    def _start_run(self, cmd: str, seconds: float, speed: float, on_done: OnDone) -> None:
        now = self._now()
        end = self.agenda.at(now + seconds, lambda: self._end_run(None))
        self.run = _Run(cmd, speed, now, on_done, end)
        self.switch(speed)

    def _end_run(self, limited_by: str | None) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        run.end.cancel()
        self.switch(0.0)
        ran = self._now() - run.started
        result: dict[str, Any] = {"ran_s": round(ran, 3)}
        if limited_by:
            result["limited_by"] = limited_by
        if run.cmd == "dose" and self.ml_per_s is not None:
            result = {"ml": round(ran * self.ml_per_s * run.speed, 3), **result}
        run.on_done(result)

    def abort(self) -> bool:
        """ABORT of a running timed command: outputs off, the command ends; False when none ran."""
        if self.run is None:
            return False
        run, self.run = self.run, None
        run.end.cancel()
        self.switch(0.0)
        return True

    def switch(self, speed: float) -> None:
        """Output at `speed` (0: off); re-arms the watchdog."""
        now = self._now()
        if speed == self.speed and (speed > 0) == self.is_on:
            return
        self._close_segment(now)
        if speed <= 0:
            if self._on_at is not None:
                self._used += now - self._on_at
                self._on_at, self._off_at = None, now
            self.speed = 0.0
        else:
            if self._on_at is None:
                if not self._stretch_open(now):
                    self._used = 0.0
                self._on_at = now
            self.speed = speed
            self._segment_at = now
        self._arm(now)
        self._on_change(self.is_on, self.speed)

    def _close_segment(self, now: float) -> None:
        if self._segment_at is not None and self.ml_per_s is not None:
            ml = (now - self._segment_at) * self.speed * self.ml_per_s
            if ml > 0:
                self._volume.append((now, ml))
                self.pumped_ml += ml
        self._segment_at = None

    def _arm(self, now: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if not self.is_on:
            return
        left = self.budget()
        allowed = self._hour_allowance(self.speed)
        self._watchdog = self.agenda.at(now + (left if allowed is None else min(left, allowed)), self._bark)

    def _bark(self) -> None:
        self._watchdog = None
        now = self._now()
        allowed = self._hour_allowance(self.speed)
        if self.budget() < MIN_ON_S:
            reason = "max_on_s"
            self._on_event("warning", "max_on",
                           f"{self.module} turned off after max_on_s={self.max_on_s:g} s")
        elif allowed is not None and allowed < MIN_ON_S:
            reason = "max_ml_per_hour"
            self._on_event(
                "warning", reason,
                f"{self.module} turned off at max_ml_per_hour={_n(self.max_ml_per_hour or 0)}: "
                f"{_n(self.ml_last_hour())} ml pumped in the last hour; it may pump again as earlier volume "
                "leaves the hour")
        else:  # earlier volume left the hour meanwhile: keep going
            self._arm(now)
            return
        if self.run is not None:
            self._end_run(reason)
        else:
            self.switch(0.0)
