"""The unit's physical buttons and status LED, wired to the unit's state and ESTOP."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, cast

from edge.safety.stop_button import button_action
from lecis.clock import iso_ts
from lecis.states import LecisState
from lecis.wire import Button, encode

if TYPE_CHECKING:
    from edge.buttons import UnitButtons
    from edge.status_led import StatusLed
    from edge.unit import Unit

log = logging.getLogger("labedge.unit")


def led_mode(unit: Unit) -> str:
    """fast: ESTOPPED or ERROR anywhere; steady: a controller holds the lease; slow: nobody does."""
    if any(m.state in (LecisState.ESTOPPED, LecisState.ERROR) for m in unit.modules.values()):
        return "fast"
    return "steady" if unit.lease.holder() else "slow"


class ButtonsAndLed:
    """Started and closed with the unit (an `edge.unit_parts.UnitExtra`, see Unit.extras)."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.buttons: UnitButtons | None = None
        self.led: StatusLed | None = None

    def on_action(self, button: str, action: str) -> None:
        unit = self.unit
        log.info("%s button %s", button, action)
        button_action(button, action, unit.estop)  # first, and local: no network needed
        pressed = Button(cast(Literal["start", "stop"], button), cast(Literal["pressed", "held"], action),
                         iso_ts(unit.clock.now()))
        # A press while the broker is away is sent when it is back: the hub logs sessions from it.
        unit.link.publish(unit.topics.button(unit.id), encode(pressed), hold=True)

    def unit_changed(self, unit: Unit) -> None:
        if self.led is not None:
            self.led.set_mode(led_mode(unit))

    async def start(self) -> None:
        config = self.unit.config
        factory = self.unit.resources.pin_factory
        buttons = config.buttons
        if buttons.start_pin is not None or buttons.stop_pin is not None:
            from edge.buttons import UnitButtons

            self.buttons = UnitButtons(
                start_pin=buttons.start_pin, stop_pin=buttons.stop_pin, pin_factory=factory,
                clock=self.unit.clock, debounce_s=buttons.debounce_s, estop_hold_s=buttons.estop_hold_s,
                pull_up=buttons.pull_up, on_action=self.on_action,
            )
            await self.buttons.start()
        if config.status_led_pin is not None:
            from edge.status_led import StatusLed

            self.led = StatusLed(config.status_led_pin, factory, self.unit.clock)
            self.led.set_mode(led_mode(self.unit))

    async def close(self) -> None:
        if self.buttons is not None:
            self.buttons.close()
        if self.led is not None:
            self.led.close()


def attach_buttons_and_led(unit: Unit) -> ButtonsAndLed:
    extras = ButtonsAndLed(unit)
    unit.extras.append(extras)
    return extras
