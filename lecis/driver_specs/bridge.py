"""Board drivers (firmware_bridge/PROTOCOL.md): `bridge`, an output of a microcontroller board used
as a pump or valve under the same rules as GPIO equipment, and `bridge.ain`, one of its analog inputs.

Several modules may name the same board port; each names its own channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lecis.dcd import CommandSpec, ReadingSpec
from lecis.driver_specs.gpio import GPIO_SETTINGS, _pump_check, _pump_commands
from lecis.driver_specs.serial import BAUDRATES
from lecis.driver_specs.spec import DriverSpec, Settings, SettingSpec

OUTPUT_CHANNEL = re.compile(r"^(?:D(?:[0-9]|1[0-3])|S[1-4])$")
ANALOG_CHANNEL = re.compile(r"^A[0-5]$")
VARIABLE = ("D3",)  # the firmware's PWM output; S<n> are steppers: both take `speed`

BOARD_SETTINGS = (
    SettingSpec("port", "string", "the board's serial port (e.g. /dev/ttyACM0 or a /dev/serial/by-id/ link)",
                required=True, expected="a serial port path (e.g. /dev/ttyACM0)"),
    SettingSpec("baudrate", "integer", "line speed of the board", default=115200, choices=BAUDRATES),
)
_MAX_ON, _MIN_OFF = GPIO_SETTINGS[2], GPIO_SETTINGS[3]


def is_variable(channel: str) -> bool:
    """PWM duty or stepper rate: commands take `speed` 0 to 1."""
    return channel in VARIABLE or channel.startswith("S")


@dataclass(frozen=True)
class BridgeSettings:
    port: str
    baudrate: int
    channel: str
    max_on_s: float
    min_off_s: float | None
    watchdog_s: float
    ml_per_s: float | None
    max_ml_per_hour: float | None
    max_rate_hz: float
    reverse: bool


@dataclass(frozen=True)
class BridgeAinSettings:
    port: str
    baudrate: int
    channel: str
    period_s: float
    vref: float


def _bridge_commands(settings: Settings) -> tuple[CommandSpec, ...]:
    channel = settings["channel"] or ""
    return _pump_commands({"pwm": is_variable(channel), "ml_per_s": settings["ml_per_s"]})


BRIDGE = DriverSpec(
    "bridge", "equipment",
    "an output of a microcontroller board (pump, valve; PWM duty or stepper rate), with a watchdog in the "
    "board's firmware besides the unit's max_on_s",
    "edge.drivers.bridge:BridgeDriver",
    (*BOARD_SETTINGS,
     SettingSpec("channel", "string", "the board's output: D2, D4, D7, D8 (on/off), D3 (PWM), S1 (stepper)",
                 required=True, pattern=OUTPUT_CHANNEL, expected="an output channel such as D2, D3 or S1"),
     _MAX_ON, _MIN_OFF,
     SettingSpec("watchdog_s", "number", "the firmware turns the output off when the unit has not refreshed "
                 "it for this long (the unit refreshes every third of it)", default=2.0, minimum=0.05,
                 maximum=600),
     SettingSpec("ml_per_s", "number", "calibrated flow at full speed; null until calibrated (no dose then)",
                 above=0, nullable=True),
     SettingSpec("max_ml_per_hour", "number", "most millilitres in any rolling hour; null: no volume limit",
                 above=0, nullable=True),
     SettingSpec("max_rate_hz", "number", "stepper: steps per second at speed 1", default=1000.0, above=0,
                 maximum=2000),
     SettingSpec("reverse", "boolean", "stepper: turn the other way (direction pin inverted)",
                 default=False)),
    BridgeSettings, _bridge_commands, check=_pump_check,
)

BRIDGE_AIN = DriverSpec(
    "bridge.ain", "instrument", "an analog input of a microcontroller board (10-bit ADC), read every period",
    "edge.drivers.bridge_ain:BridgeAinDriver",
    (*BOARD_SETTINGS,
     SettingSpec("channel", "string", "the board's analog input A0 to A5", required=True,
                 pattern=ANALOG_CHANNEL, expected="an analog channel A0 to A5"),
     SettingSpec("period_s", "number", "seconds between readings", default=1.0, minimum=0.05, maximum=3600),
     SettingSpec("vref", "number", "volts at the top of the ADC's range (the Uno's AVcc: 5)", default=5.0,
                 above=0, maximum=5.5)),
    BridgeAinSettings, lambda settings: (),
    readings=lambda settings: (ReadingSpec("raw", "counts", 0, 1023),
                               ReadingSpec("volts", "V", 0, settings["vref"] or 5.0)),
)

__all__ = ["BRIDGE", "BRIDGE_AIN", "BridgeAinSettings", "BridgeSettings", "is_variable"]
