"""One GPIO output (relay input, MOSFET gate) with its polarity, optional PWM and max-on watchdog.

Shared by the switch and pump drivers. The watchdog is the unit's own
safety limit: whatever was commanded, the output goes off once it has been
on continuously for `max_on_s` of clock time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gpiozero import GPIOZeroError, OutputDevice, PWMOutputDevice

from lecis.clock import Clock
from lecis.errors import DeviceError

log = logging.getLogger("labedge.gpio")


class GpioOutput:
    """An output created off; `on(speed)`, `off()`, and a watchdog armed at every turn-on.

    `on_limit(seconds_on)` is called after the watchdog turned the output off.
    `on_stretch(seconds, speed)` is called whenever a stretch of on-time at one
    speed ends (off, speed change, watchdog, close), so callers can count
    what was delivered.
    """

    def __init__(
        self,
        name: str,
        pin: int,
        *,
        clock: Clock,
        max_on_s: float,
        active_high: bool = True,
        pwm: bool = False,
        pwm_frequency_hz: float = 100.0,
        pin_factory: Any = None,
        on_limit: Callable[[float], None] | None = None,
        on_stretch: Callable[[float, float], None] | None = None,
    ) -> None:
        if max_on_s <= 0:
            raise ValueError(f"{name}: max_on_s must be above 0, got {max_on_s}")
        self.name = name
        self.pin = pin
        self.max_on_s = max_on_s
        self.pwm = pwm
        self._clock = clock
        self._on_limit = on_limit
        self._on_stretch = on_stretch
        self._speed = 0.0
        self._on_mono: float | None = None  # start of the continuous on-time
        self._stretch_mono: float | None = None  # start of the stretch at the current speed
        self._on_since: datetime | None = None
        self._watchdog: asyncio.Task[None] | None = None
        try:
            if pwm:
                self._device: Any = PWMOutputDevice(
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

    def on_for(self) -> float:
        """Seconds of continuous on-time so far (0.0 while off)."""
        return 0.0 if self._on_mono is None else self._clock.monotonic() - self._on_mono

    def stretch_now(self) -> tuple[float, float]:
        """(seconds, speed) of the stretch in progress, not yet reported to `on_stretch`."""
        if self._stretch_mono is None:
            return 0.0, 0.0
        return self._clock.monotonic() - self._stretch_mono, self._speed

    # ---- switching --------------------------------------------------------------------------
    def on(self, speed: float = 1.0) -> None:
        """Turn on (or change speed); the continuous on-time keeps counting across speed changes."""
        if not 0.0 <= speed <= 1.0:
            raise ValueError(f"{self.name}: speed must be between 0 and 1, got {speed}")
        if not self.pwm and speed != 1.0:
            raise ValueError(f"{self.name}: speed below 1 needs pwm: true")
        if speed == 0.0:
            self.off()
            return
        if self._device is None:
            raise DeviceError("gpio_closed", f"{self.name}: GPIO{self.pin} is already released")
        now = self._clock.monotonic()
        if self._on_mono is None:
            self._write(speed)
            self._speed = speed
            self._on_mono = now
            self._stretch_mono = now
            self._on_since = self._clock.now()
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch(now), name=f"{self.name} max_on watchdog"
            )
        elif speed != self._speed:
            self._end_stretch(now)
            self._write(speed)
            self._speed = speed
            self._stretch_mono = now

    def off(self) -> None:
        """Turn off now (sync). Always writes the pin, so a call is a sure way to reach off."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not _current_task():
            watchdog.cancel()
        if self._device is not None:
            self._write(0.0)
        if self._on_mono is not None:
            self._end_stretch(self._clock.monotonic())
            self._on_mono = None
            self._stretch_mono = None
            self._on_since = None
            self._speed = 0.0

    def close(self) -> None:
        """Turn off and release the pin."""
        self.off()
        device, self._device = self._device, None
        if device is not None:
            device.close()

    # ---- internals --------------------------------------------------------------------------
    def _write(self, speed: float) -> None:
        if self.pwm:
            self._device.value = speed
        elif speed:
            self._device.on()
        else:
            self._device.off()

    def _end_stretch(self, now: float) -> None:
        if self._stretch_mono is None or self._on_stretch is None:
            return
        self._on_stretch(now - self._stretch_mono, self._speed)

    async def _watch(self, started: float) -> None:
        # Clock sleeps may end a little early on scaled clocks: check the time itself.
        while (left := self.max_on_s - (self._clock.monotonic() - started)) > 0:
            await self._clock.sleep(left)
        if self._on_mono != started:  # turned off (and maybe on again) meanwhile
            return
        seconds_on = self._clock.monotonic() - started
        self.off()
        if self._on_limit is None:
            return
        try:
            self._on_limit(seconds_on)
        except Exception:  # the output is off already; a reporting bug must not hide that
            log.exception("%s: reporting the max_on_s cut failed", self.name)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: called from plain sync code (exit paths)
        return None
