"""The unit's physical start and stop buttons, debounced on the unit's clock.

gpiozero reports raw edges (on a Pi, from its own threads). Each edge is
handed to the asyncio loop, and a level counts only once it has stayed the
same for `debounce_s`: mock pins ignore gpiozero's bounce_time, and a clock
of our own keeps tests and accelerated labs exact.

Actions reported through `on_action(button, action)`:
- ("start", "pressed") and ("stop", "pressed") at each debounced press;
- ("stop", "held") once per press when stop stays pressed for `estop_hold_s`
  (counted from the start of the press). The unit turns that into an ESTOP.

A stop button already pressed when the unit starts counts as a press (a
jammed or held stop must still stop the unit); a start button already
pressed does not (nothing may start by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from gpiozero import Button, GPIOZeroError

from lecis.clock import Clock
from lecis.errors import DeviceError, SettingInvalid

log = logging.getLogger("labedge.buttons")

class _DebouncedButton:
    """One button: raw edges in, debounced press/release and hold out."""

    def __init__(self, name: str, device: Any, owner: UnitButtons) -> None:
        self.name = name
        self.device = device
        self.owner = owner
        self.pressed = False  # the debounced level
        self.settle: asyncio.Task[None] | None = None
        self.hold: asyncio.Task[None] | None = None
        self.closed = False

    def edge(self) -> None:
        """A raw edge: wait for the level to stay put for debounce_s before believing it."""
        if self.closed:
            return  # an edge queued just before close()
        if self.settle is not None:
            self.settle.cancel()
        self.settle = asyncio.get_running_loop().create_task(self._settle(), name=f"{self.name} debounce")

    async def _settle(self) -> None:
        await self.owner.clock.sleep(self.owner.debounce_s)
        self.settle = None
        level = bool(self.device.is_pressed)
        if level == self.pressed:
            return  # a glitch that came back to where it was
        self.pressed = level
        if level:
            self.owner.emit(self.name, "pressed")
            if self.name == "stop":
                self.hold = asyncio.get_running_loop().create_task(self._hold(), name="stop hold")
        elif self.hold is not None:
            self.hold.cancel()
            self.hold = None

    async def _hold(self) -> None:
        # The press began debounce_s before it was believed.
        await self.owner.clock.sleep(max(0.0, self.owner.estop_hold_s - self.owner.debounce_s))
        self.hold = None
        if self.pressed:
            self.owner.emit(self.name, "held")

    def close(self) -> None:
        self.closed = True
        for task in (self.settle, self.hold):
            if task is not None:
                task.cancel()
        self.settle = self.hold = None


class UnitButtons:
    """Start and stop buttons (either may be None: not fitted)."""

    def __init__(
        self,
        start_pin: int | None,
        stop_pin: int | None,
        pin_factory: Any,
        clock: Clock,
        debounce_s: float,
        estop_hold_s: float,
        pull_up: bool,
        on_action: Callable[[str, str], None],
    ) -> None:
        if debounce_s < 0 or estop_hold_s <= 0:
            raise SettingInvalid(
                f"buttons need debounce_s >= 0 and estop_hold_s > 0, got {debounce_s} and {estop_hold_s}"
            )
        self.pins = {"start": start_pin, "stop": stop_pin}
        self.pin_factory = pin_factory
        self.clock = clock
        self.debounce_s = debounce_s
        self.estop_hold_s = estop_hold_s
        self.pull_up = pull_up
        self.on_action = on_action
        self.buttons: dict[str, _DebouncedButton] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Claim the pins and start listening. Raises DeviceError when a pin cannot be used."""
        self._loop = asyncio.get_running_loop()
        for name, pin in self.pins.items():
            if pin is None:
                continue
            try:
                # Holds are timed here, on the clock; gpiozero's hold thread only needs a short
                # hold_time so that closing a pressed button does not wait on it.
                device = Button(
                    pin, pull_up=self.pull_up, bounce_time=None, hold_time=0.05, pin_factory=self.pin_factory
                )
            except (GPIOZeroError, ValueError) as exc:
                self.close()
                raise DeviceError(
                    "gpio_unavailable",
                    f"{name} button: cannot read GPIO{pin} ({type(exc).__name__}: {exc}); check the pin "
                    "number and that nothing else uses it",
                ) from exc
            button = _DebouncedButton(name, device, self)
            self.buttons[name] = button
            device.when_pressed = self._from_gpio(button)
            device.when_released = self._from_gpio(button)
            if name == "stop" and device.is_pressed:
                button.edge()
            else:
                button.pressed = bool(device.is_pressed)

    def _from_gpio(self, button: _DebouncedButton) -> Callable[[], None]:
        loop = self._loop
        assert loop is not None

        def changed() -> None:
            # Called by gpiozero, on a Pi from its own thread: hop onto the loop.
            if not loop.is_closed():
                loop.call_soon_threadsafe(button.edge)

        return changed

    def emit(self, button: str, action: str) -> None:
        try:
            self.on_action(button, action)
        except Exception:  # the buttons must keep working for the next press (and the ESTOP)
            log.exception("handling %s button %s failed", button, action)

    def close(self) -> None:
        """Stop listening and release the pins."""
        for button in self.buttons.values():
            button.device.when_pressed = None
            button.device.when_released = None
            button.close()
            with contextlib.suppress(GPIOZeroError):
                button.device.close()
        self.buttons.clear()
