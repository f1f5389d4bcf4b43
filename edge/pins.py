"""Which gpiozero pin factory the unit uses, and a view of mock pins for tests and the lab.

Nothing is chosen at import: `make_pin_factory(None)` returns None and
gpiozero picks its factory lazily when the first device is built, honouring
GPIOZERO_PIN_FACTORY (e.g. `lgpio` on a Pi, `mock` off it) and
GPIOZERO_MOCK_PIN_CLASS (`mockpwmpin` for pumps driven by PWM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lecis.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from gpiozero import Factory
    from gpiozero.pins.mock import MockPin

PIN_FACTORY_KINDS = ("mock", "lgpio")


def make_pin_factory(kind: str | None) -> Factory | None:
    """A pin factory for `kind`: "mock" (PWM-capable mock pins), "lgpio", or None for gpiozero's choice."""
    if kind is None:
        return None
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)
    if kind == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    raise ConfigError([ConfigProblem(
        "command line", None, "--pin-factory",
        f"unknown pin factory {kind!r}; use one of {', '.join(PIN_FACTORY_KINDS)} or leave it out",
    )])


@dataclass
class PinView:
    """A mock pin seen from the load's side: 1.0 is fully on, whatever the polarity."""

    pin: MockPin
    active_high: bool = True

    def _as_load(self, state: Any) -> float:
        level = float(state)
        return level if self.active_high else 1.0 - level

    @property
    def level(self) -> float:
        """Duty cycle the load sees now (0.0 off, 1.0 fully on)."""
        return self._as_load(self.pin.state)

    @property
    def is_on(self) -> bool:
        """Driven as an output and not at 0. A released pin (an input) counts as off: wiring makes it so."""
        return self.pin.function == "output" and self.level > 0.0

    def history(self) -> list[float]:
        """Every level the load saw since the pin was made (or `clear()`), oldest first."""
        return [self._as_load(s.state) for s in self.pin.states]

    def timeline(self) -> list[tuple[float, float]]:
        """(seconds since the previous change, level) pairs, in real time."""
        return [(s.timestamp, self._as_load(s.state)) for s in self.pin.states]

    def changes(self) -> int:
        """How many times the level changed since the pin was made (or `clear()`)."""
        return len(self.pin.states) - 1

    def clear(self) -> None:
        """Forget the history; it starts again from the current level."""
        self.pin.clear_states()


def view_pin(factory: Any, pin: int, active_high: bool = True) -> PinView:
    """The mock pin `pin` (BCM number) of a MockFactory, seen with the given polarity."""
    return PinView(factory.pin(pin), active_high)
