"""The unit's status LED: what a person at the bench sees at a glance.

Modes: "steady" (ready, a controller holds the lease), "slow" (no
controller: 1 s on, 1 s off), "fast" (ESTOPPED or ERROR: 0.125 s on/off),
"off". Blinking is an asyncio task on the unit's clock. `refuse()` shows a
refusal over whatever mode is on (three quick double flashes, REFUSAL_S in
all), then the mode again: the hub sends it (unit command `led.refuse`) when
a button press is refused, e.g. a start while a session is open.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from gpiozero import LED, GPIOZeroError

from lecis.clock import Clock
from lecis.errors import DeviceError, SettingInvalid

#: Half period (seconds on, then the same off) of each blinking mode; None: no blinking.
HALF_PERIOD_S: dict[str, float | None] = {"steady": None, "off": None, "slow": 1.0, "fast": 0.125}
#: The refusal: (on, off) seconds, three double flashes set apart by a longer dark gap.
REFUSAL_PATTERN = ((0.08, 0.08), (0.08, 0.3)) * 3
REFUSAL_S = sum(on + off for on, off in REFUSAL_PATTERN)


class StatusLed:
    """One LED (anode to the pin through a resistor, cathode to ground)."""

    def __init__(self, pin: int, pin_factory: Any, clock: Clock) -> None:
        self.clock = clock
        self.mode = "off"
        self._blink: asyncio.Task[None] | None = None
        self._closed = False
        self.refusals = 0  # refusals shown (a person at the bench saw each)
        try:
            self.led = LED(pin, active_high=True, initial_value=False, pin_factory=pin_factory)
        except (GPIOZeroError, ValueError) as exc:
            raise DeviceError(
                "gpio_unavailable",
                f"status LED: cannot drive GPIO{pin} ({type(exc).__name__}: {exc}); check the pin number "
                "and that nothing else uses it",
            ) from exc

    def set_mode(self, mode: str) -> None:
        """Show `mode`. Setting the mode it already shows changes nothing (the blink keeps its rhythm)."""
        if mode not in HALF_PERIOD_S:
            raise SettingInvalid(f"status LED mode must be one of {', '.join(HALF_PERIOD_S)}, got {mode!r}")
        if self._closed or mode == self.mode:
            return
        self._stop_blinking()
        self.mode = mode
        half = HALF_PERIOD_S[mode]
        if half is not None:
            self._blink = asyncio.get_running_loop().create_task(self._blink_every(half), name="status LED")
        elif mode == "steady":
            self.led.on()
        else:
            self.led.off()

    def refuse(self) -> bool:
        """Show a refusal over the current mode, then that mode again (a mode set meanwhile wins).

        Not over "fast": ESTOPPED or ERROR stays what the bench sees. True if shown.
        """
        if self._closed or self.mode == "fast":
            return False
        self._stop_blinking()
        self.refusals += 1
        self._blink = asyncio.get_running_loop().create_task(self._refusal(self.mode), name="status LED")
        return True

    async def _refusal(self, mode: str) -> None:
        start = self.clock.monotonic()
        at = 0.0
        for on_s, off_s in REFUSAL_PATTERN:
            self.led.on()
            at += on_s
            await self.clock.sleep(start + at - self.clock.monotonic())
            self.led.off()
            at += off_s
            await self.clock.sleep(start + at - self.clock.monotonic())
        self._blink = None  # so that showing the mode again does not cancel this task
        self.mode = "off" if mode != "off" else "steady"
        self.set_mode(mode)

    async def _blink_every(self, half: float) -> None:
        # Deadlines from one start, so late wake-ups do not stretch the rhythm.
        start = self.clock.monotonic()
        step = 0
        while True:
            if step % 2 == 0:
                self.led.on()
            else:
                self.led.off()
            step += 1
            await self.clock.sleep(start + step * half - self.clock.monotonic())

    def _stop_blinking(self) -> None:
        if self._blink is not None:
            self._blink.cancel()
            self._blink = None

    def close(self) -> None:
        """Stop blinking, turn the LED off and release its pin."""
        if self._closed:
            return
        self._closed = True
        self._stop_blinking()
        self.mode = "off"
        with contextlib.suppress(GPIOZeroError):
            self.led.off()
            self.led.close()
