"""GPIO equipment drivers: `gpio.switch` (valve, aeration, heater relay) and `gpio.pump` (dosing pump)."""

from __future__ import annotations

from dataclasses import dataclass

from lecis.dcd import CommandSpec, ParamSpec
from lecis.driver_specs.spec import DriverSpec, Settings, SettingSpec
from lecis.yaml_loader import MISSING, Fields

GPIO_SETTINGS = (
    SettingSpec("pin", "pin", "BCM number of the output pin (17 or GPIO17)", required=True),
    SettingSpec("active_high", "boolean", "false when the relay or driver switches on at a low pin",
                default=True),
    SettingSpec("max_on_s", "number", "longest on-stretch in seconds; the unit turns the output off then",
                above=0, missing="every output needs a maximum on-time in seconds "
                                 "(the unit turns it off when it passes), e.g. max_on_s: 600"),
    SettingSpec("min_off_s", "number", "off gaps shorter than this do not end an on-stretch; null: the "
                "driver's default", minimum=0, nullable=True),
)


@dataclass(frozen=True)
class SwitchSettings:
    pin: int
    active_high: bool
    max_on_s: float
    min_off_s: float | None  # None: the driver's default


@dataclass(frozen=True)
class PumpSettings(SwitchSettings):
    ml_per_s: float | None  # None until the pump is calibrated
    max_ml_per_hour: float | None  # None: no volume limit
    pwm: bool
    pwm_frequency_hz: float


# No upper bound here: the drivers refuse a dose longer than max_on_s and cut
# a run or pulse at max_on_s, each with a message saying why.
_SECONDS = ParamSpec("seconds", "number", True, 0.001, None, unit="s")
_ML = ParamSpec("ml", "number", True, 0.001, None, unit="ml")


def _switch_commands(settings: Settings) -> tuple[CommandSpec, ...]:
    return (CommandSpec("on", (), description="switch on (off again after max_on_s at the latest)"),
            CommandSpec("off", (), description="switch off"),
            CommandSpec("pulse", (_SECONDS,), description="switch on for `seconds`, then off"))


def _pump_commands(settings: Settings) -> tuple[CommandSpec, ...]:
    speed = (ParamSpec("speed", "number", False, 0.0, 1.0),) if settings["pwm"] else ()
    commands = [CommandSpec("on", speed, description="run until off (off after max_on_s at the latest)"),
                CommandSpec("off", (), description="stop"),
                CommandSpec("run", (_SECONDS,) + speed, description="run for `seconds`, then stop")]
    if settings["ml_per_s"] is not None:
        commands.append(CommandSpec("dose", (_ML,) + speed,
                                    description="pump `ml` millilitres using the calibrated ml_per_s"))
    return tuple(commands)


def _pump_check(f: Fields, settings: Settings) -> None:
    if settings["max_ml_per_hour"] is not None and f.value(("ml_per_s",)) in (None, MISSING):
        f.problem(("max_ml_per_hour",), "needs ml_per_s, the pump's calibrated flow, to count millilitres")


SWITCH = DriverSpec(
    "gpio.switch", "equipment", "one on/off output (valve, aeration, heater relay) with a timed pulse",
    "edge.drivers.gpio_switch:GpioSwitchDriver", GPIO_SETTINGS, SwitchSettings, _switch_commands,
)
PUMP = DriverSpec(
    "gpio.pump", "equipment", "a dosing pump on one output, optionally speed-controlled by PWM",
    "edge.drivers.gpio_pump:GpioPumpDriver",
    (*GPIO_SETTINGS,
     SettingSpec("ml_per_s", "number", "calibrated flow at full speed; null until calibrated (no dose then)",
                 above=0, nullable=True),
     SettingSpec("max_ml_per_hour", "number", "most millilitres in any rolling hour; null: no volume limit",
                 above=0, nullable=True),
     SettingSpec("pwm", "boolean", "speed control by PWM (commands then take `speed` 0 to 1)", default=False),
     SettingSpec("pwm_frequency_hz", "number", "PWM frequency", default=100.0, above=0)),
    PumpSettings, _pump_commands, check=_pump_check,
)
