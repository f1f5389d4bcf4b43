"""Which gpiozero pin factory the unit uses, and a view of mock pins for tests and the lab.

Nothing is chosen at import. `labedge edge run` picks one at start,
`--pin-factory lgpio` (a Raspberry Pi) or `mock` (simulated pins, anywhere),
and opens it before any module runs, so a unit started off a Pi without
`mock` stops with one line (`PinFactoryUnavailable`) instead of looping
through ERROR and CLEARING. `make_pin_factory(None)` returns None: gpiozero
then picks lazily when the first device is built, honouring
GPIOZERO_PIN_FACTORY and GPIOZERO_MOCK_PIN_CLASS (`mockpwmpin` for PWM pumps).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lecis.errors import ConfigError, ConfigProblem, LabedgeError
from lecis.unit_config import UnitConfig

if TYPE_CHECKING:
    from gpiozero import Factory
    from gpiozero.pins.mock import MockPin

PIN_FACTORY_KINDS = ("lgpio", "mock")


class PinFactoryUnavailable(LabedgeError):
    """The GPIO pins cannot be opened on this machine (not a Pi, lgpio missing, no permission)."""


def default_pin_factory_kind(environ: Mapping[str, str]) -> str:
    """GPIOZERO_PIN_FACTORY when it names one of ours, else lgpio: a unit runs on a Pi."""
    kind = environ.get("GPIOZERO_PIN_FACTORY", "").strip().lower()
    return kind if kind in PIN_FACTORY_KINDS else "lgpio"


def uses_pins(config: UnitConfig) -> bool:
    """True when some module, button or LED of the unit is on a GPIO pin."""
    return (any(dcd.driver.startswith("gpio.") for dcd in config.modules)
            or config.buttons.start_pin is not None or config.buttons.stop_pin is not None
            or config.status_led_pin is not None)


def make_pin_factory(kind: str | None, workdir: Path | None = None) -> Factory | None:
    """A pin factory for `kind`: "mock" (PWM-capable mock pins), "lgpio", or None for gpiozero's choice.

    lgpio leaves a notification pipe (`.lgd-nfy0`) in its working directory,
    the current one unless LG_WD says otherwise; `workdir` (the unit's data
    folder) is used when LG_WD is unset. lgpio also makes that folder the
    process's working directory (it names its later pipes relative to it), so
    the unit opens everything by absolute path (configs are resolved on load).
    Raises PinFactoryUnavailable when lgpio cannot open the pins here.
    """
    if kind is None:
        return None
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)
    if kind == "lgpio":
        return _open_lgpio(workdir)
    raise ConfigError([ConfigProblem(
        "command line", None, "--pin-factory",
        f"unknown pin factory {kind!r}; use one of {', '.join(PIN_FACTORY_KINDS)} or leave it out",
    )])


def _open_lgpio(workdir: Path | None) -> Factory:
    advice = "on a machine without GPIO pins, run with --pin-factory mock"
    if workdir is not None and "LG_WD" not in os.environ:
        os.environ["LG_WD"] = str(workdir)  # read by lgpio when it is imported, just below
    try:
        import lgpio  # noqa: F401  (imported first so that a missing library is named as such)
    except ImportError:
        raise PinFactoryUnavailable(
            "GPIO pins unavailable: the lgpio library is not installed (see docs/dependencies.md); "
            + advice) from None
    from gpiozero.exc import GPIOZeroError
    from gpiozero.pins.lgpio import LGPIOFactory

    try:
        return LGPIOFactory()
    except (GPIOZeroError, OSError) as exc:
        raise PinFactoryUnavailable(f"GPIO pins unavailable: {exc} (not a Raspberry Pi?); {advice}") from None
    except Exception as exc:  # lgpio.error subclasses Exception only: "can not open gpiochip"
        if type(exc).__module__ != "lgpio":
            raise
        raise PinFactoryUnavailable(f"GPIO pins unavailable: lgpio says {exc!s} (no /dev/gpiochip*, or no "
                                    f"permission: add the user to group gpio); {advice}") from None


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
