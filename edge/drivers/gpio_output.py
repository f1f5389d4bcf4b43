"""One GPIO output (relay input, MOSFET gate) with its polarity, optional PWM and its on-stretch limit.

The limit is the unit's own: whatever was commanded, an output is on for at
most `max_on_s` of clock time in one *stretch*. A stretch is the on-time of
an output summed across the off gaps inside it: a gap shorter than
`min_off_s`, or any gap while a paused command holds the stretch (`hold`),
does not end it. So back-to-back off/on, repeated runs and PAUSE/RESUME all
count against the same `max_on_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gpiozero import GPIOZeroError, OutputDevice, PWMOutputDevice

from lecis.clock import Clock
from lecis.errors import CommandFailed, DeviceError, SettingInvalid

log = logging.getLogger("labedge.gpio")

# An output must really rest before a fresh stretch: a second covers relay and
# motor settling and every scripted off/on loop (commands arrive milliseconds
# apart), yet a deliberate pause of a second or more starts anew.
DEFAULT_MIN_OFF_S = 1.0
_EPS_S = 1e-9
MIN_ON_S = 0.001  # less on-time than this left in a stretch counts as none: no flicker of the pin

Allowance = Callable[[float], "tuple[float, str] | None"]


class OutputLimitReached(CommandFailed):
    """The output may not switch on now: its stretch used up max_on_s, or another limit (`reason`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class GpioOutput:
    """An output created off; `on(speed)`, `off()`, and a watchdog armed at every turn-on.

    `on_limit(reason, seconds_on)` is called after the watchdog turned the
    output off: reason `max_on_s`, or the reason given by `allowance`.
    `allowance(speed)` (optional) returns (seconds, reason): how long the
    output may stay on at `speed` by another limit, asked again each time the
    watchdog wakes. `on_segment(seconds, speed)` is called whenever on-time at
    one speed ends (off, speed change, watchdog, close), and
    `on_segment_start(speed, max_seconds)` when one begins, so callers can
    count what was delivered. `on_switch(is_on, used)` follows every turn-on
    (`used`: on-seconds of the stretch before it) and turn-off (`used`: in all),
    so the stretch can be kept across restarts (`restore`).
    """

    def __init__(
        self,
        name: str,
        pin: int,
        *,
        clock: Clock,
        max_on_s: float,
        min_off_s: float = DEFAULT_MIN_OFF_S,
        active_high: bool = True,
        pwm: bool = False,
        pwm_frequency_hz: float = 100.0,
        pin_factory: Any = None,
        on_limit: Callable[[str, float], None] | None = None,
        on_segment: Callable[[float, float], None] | None = None,
        on_segment_start: Callable[[float, float], None] | None = None,
        allowance: Allowance | None = None,
        on_switch: Callable[[bool, float], None] | None = None,
        device: Any = None,
    ) -> None:
        if max_on_s <= 0:
            raise DeviceError("bad_settings", f"{name}: max_on_s must be above 0, got {max_on_s}")
        if min_off_s < 0:
            raise DeviceError("bad_settings", f"{name}: min_off_s must be 0 or more, got {min_off_s}")
        self.name = name
        self.pin = pin
        self.max_on_s = max_on_s
        self.min_off_s = min_off_s
        self.pwm = pwm
        self._clock = clock
        self._on_limit = on_limit
        self._on_segment = on_segment
        self._on_segment_start = on_segment_start
        self._allowance = allowance
        self._on_switch = on_switch
        self._speed = 0.0
        self._used = 0.0  # on-seconds of the current stretch before the current on-interval
        self._on_mono: float | None = None  # start of the current on-interval
        self._off_mono: float | None = None  # last turn-off, while the stretch may still go on
        self._segment_mono: float | None = None  # start of the on-time at the current speed
        self._held = False
        self._on_since: datetime | None = None
        self._watchdog: asyncio.Task[None] | None = None
        if device is not None:  # an output elsewhere (a board's channel): on(), off(), value, close()
            self._device: Any = device
            return
        try:
            if pwm:
                self._device = PWMOutputDevice(
                    pin, active_high=active_high, initial_value=0, frequency=pwm_frequency_hz,
                    pin_factory=pin_factory,
                )
            else:
                self._device = OutputDevice(
                    pin, active_high=active_high, initial_value=False, pin_factory=pin_factory,
                )
        except (GPIOZeroError, ValueError) as exc:
            raise DeviceError(
                "gpio_unavailable",
                f"{name}: cannot drive GPIO{pin} ({type(exc).__name__}: {exc}); check the pin number, "
                "that no other module or program uses it, and that the GPIO library is installed",
            ) from exc

    # ---- state ------------------------------------------------------------------------------
    @property
    def is_on(self) -> bool:
        return self._on_mono is not None

    @property
    def speed(self) -> float:
        """Duty cycle now (0.0 when off, 1.0 for a plain on)."""
        return self._speed

    @property
    def on_since(self) -> datetime | None:
        """Clock time the output last turned on, or None while off."""
        return self._on_since

    def _stretch_open(self, now: float) -> bool:
        if self._on_mono is not None or self._held:
            return True
        return self._off_mono is not None and now - self._off_mono < self.min_off_s

    def on_for(self) -> float:
        """On-seconds of the current stretch so far (0.0 once the stretch has ended)."""
        now = self._clock.monotonic()
        if not self._stretch_open(now):
            return 0.0
        return self._used + (now - self._on_mono if self._on_mono is not None else 0.0)

    def budget(self) -> float:
        """Seconds the output may still be on before the stretch reaches max_on_s."""
        return max(0.0, self.max_on_s - self.on_for())

    def rest_needed(self) -> float | None:
        """Seconds of off-time left before a fresh stretch (None while a paused command holds it)."""
        if self._held:
            return None
        if self._on_mono is not None:
            return self.min_off_s
        if self._off_mono is None:
            return 0.0
        return max(0.0, self.min_off_s - (self._clock.monotonic() - self._off_mono))

    def segment_now(self) -> tuple[float, float]:
        """(seconds, speed) of the on-time in progress, not yet reported to `on_segment`."""
        if self._segment_mono is None:
            return 0.0, 0.0
        return self._clock.monotonic() - self._segment_mono, self._speed

    # ---- switching --------------------------------------------------------------------------
    def restore(self, used: float, off_for: float) -> None:
        """Take up a stretch left by the last process: `used` on-seconds, off for `off_for` seconds."""
        if self._on_mono is None and off_for < self.min_off_s:
            self._used = min(self.max_on_s, max(0.0, used))
            self._off_mono = self._clock.monotonic() - max(0.0, off_for)

    def hold(self, held: bool) -> None:
        """While held (a paused command), off-time does not end the stretch."""
        self._held = held

    def on(self, speed: float = 1.0) -> None:
        """Turn on (or change speed); raises OutputLimitReached when the stretch has no time left."""
        if not 0.0 <= speed <= 1.0:
            raise SettingInvalid(f"{self.name}: speed must be between 0 and 1, got {speed}")
        if not self.pwm and speed != 1.0:
            raise SettingInvalid(f"{self.name}: speed below 1 needs pwm: true")
        if speed == 0.0:
            self.off()
            return
        if self._device is None:
            raise DeviceError("gpio_closed", f"{self.name}: GPIO{self.pin} is already released")
        now = self._clock.monotonic()
        if self._on_mono is None:
            if not self._stretch_open(now):
                self._used = 0.0
            left = self.max_on_s - self._used
            if left < MIN_ON_S:
                raise OutputLimitReached("max_on_s", self.limit_message())
            other = self._allowance(speed) if self._allowance is not None else None
            if other is not None and other[0] < MIN_ON_S:
                raise OutputLimitReached(other[1], f"{self.name} may not switch on: {other[1]} reached")
            self._write(speed)
            self._speed = speed
            self._on_mono = now
            self._off_mono = None
            self._on_since = self._clock.now()
            self._start_segment(now, left)
            self._report_switch(True, self._used)
        elif speed != self._speed:
            self._end_segment(now)
            self._write(speed)
            self._speed = speed
            self._start_segment(now, self.max_on_s - self._used - (now - self._on_mono))
        else:
            return
        self._arm()

    def off(self) -> None:
        """Turn off now (sync). Always writes the pin, so a call is a sure way to reach off."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not _current_task():
            watchdog.cancel()
        if self._device is not None:
            self._write(0.0)
        if self._on_mono is not None:
            now = self._clock.monotonic()
            self._end_segment(now)
            self._used += now - self._on_mono
            self._on_mono = None
            self._off_mono = now
            self._segment_mono = None
            self._on_since = None
            self._speed = 0.0
            self._report_switch(False, self._used)

    def close(self) -> None:
        """Turn off and release the pin."""
        self._held = False
        self.off()
        device, self._device = self._device, None
        if device is not None:
            device.close()

    def limit_message(self) -> str:
        rest = self.rest_needed()
        wait = "" if rest is None else f"; it must stay off {rest:.3g} s more (min_off_s={self.min_off_s:g})"
        return (f"{self.name} has been on for max_on_s={self.max_on_s:g} s in this stretch{wait} "
                "before it can be switched on again")

    # ---- internals --------------------------------------------------------------------------
    def _write(self, speed: float) -> None:
        if self.pwm:
            self._device.value = speed
        elif speed:
            self._device.on()
        else:
            self._device.off()

    def _report_switch(self, is_on: bool, used: float) -> None:
        if self._on_switch is None:
            return
        try:
            self._on_switch(is_on, used)
        except Exception:  # bookkeeping must never stand between a pin and its safe value
            log.exception("%s: recording the on-stretch failed", self.name)

    def _start_segment(self, now: float, max_seconds: float) -> None:
        self._segment_mono = now
        if self._on_segment_start is not None:
            self._on_segment_start(self._speed, max(0.0, max_seconds))

    def _end_segment(self, now: float) -> None:
        if self._segment_mono is None or self._on_segment is None:
            return
        self._on_segment(now - self._segment_mono, self._speed)

    def _arm(self) -> None:
        old, self._watchdog = self._watchdog, None
        if old is not None:
            old.cancel()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name=f"{self.name} watchdog")

    def _left(self) -> tuple[float, str]:
        left, reason = self.max_on_s - self.on_for(), "max_on_s"
        if self._allowance is not None:
            other = self._allowance(self._speed)
            if other is not None and other[0] < left:
                left, reason = other
        return left, reason

    async def _watch(self) -> None:
        # Asked again at every wake: clock sleeps may end a little early, and
        # another limit (a rolling hour) may have grown meanwhile.
        while (left := self._left())[0] > _EPS_S:
            await self._clock.sleep(left[0])
        if self._on_mono is None:
            return
        seconds_on = self.on_for()
        self.off()
        if self._on_limit is None:
            return
        try:
            self._on_limit(left[1], seconds_on)
        except Exception:  # the output is off already; a reporting bug must not hide that
            log.exception("%s: reporting the %s cut failed", self.name, left[1])


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: called from plain sync code (exit paths)
        return None
