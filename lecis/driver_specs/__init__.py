"""Every driver described once: settings, readings and built-in commands, for the DCD loader,
the unit's drivers (typed settings), `labedge script check` and the hub.

Adding a driver means adding its `DriverSpec` to DRIVER_SPECS and writing its
driver class (named in `driver_class`); nothing else lists drivers.
"""

from __future__ import annotations

from typing import Any, TypeVar

from lecis.dcd import Dcd
from lecis.driver_specs.bridge import BRIDGE, BRIDGE_AIN, BridgeAinSettings, BridgeSettings
from lecis.driver_specs.gpio import PUMP, SWITCH, PumpSettings, SwitchSettings
from lecis.driver_specs.serial import (
    BAUDRATES,
    EZO,
    EZO_PROBES,
    EZO_READINGS,
    LINE,
    EzoSettings,
    LineSettings,
    SerialSettings,
)
from lecis.driver_specs.spec import PIN_TEXT, DriverSpec, SettingSpec, read_pin
from lecis.errors import ConfigProblem, DeviceError, LabedgeError
from lecis.yaml_loader import Fields, YamlDoc

__all__ = [
    "BAUDRATES", "BridgeAinSettings", "BridgeSettings", "DRIVERS", "DRIVER_SPECS", "EQUIPMENT_DRIVERS",
    "EZO_PROBES", "EZO_READINGS",
    "INSTRUMENT_DRIVERS", "PIN_TEXT", "DriverSettingsInvalid", "DriverSpec", "DriverUnknown", "EzoSettings",
    "LineSettings",
    "PumpSettings", "SerialSettings", "SettingSpec", "SwitchSettings", "driver_spec", "read_pin",
    "settings_of",
]

DRIVER_SPECS: dict[str, DriverSpec] = {
    spec.name: spec for spec in (EZO, LINE, SWITCH, PUMP, BRIDGE, BRIDGE_AIN)}
DRIVERS = tuple(DRIVER_SPECS)
INSTRUMENT_DRIVERS = tuple(name for name, spec in DRIVER_SPECS.items() if spec.kind == "instrument")
EQUIPMENT_DRIVERS = tuple(name for name, spec in DRIVER_SPECS.items() if spec.kind == "equipment")
T = TypeVar("T")


class DriverSettingsInvalid(DeviceError):
    """A module's settings do not fit its driver's spec (a Dcd built by hand, not by the loader)."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("bad_settings", "; ".join(str(p) for p in problems))
        self.problems = problems


class DriverUnknown(LabedgeError, KeyError):
    """No spec for this driver name (a Dcd the loader did not build)."""

    def __str__(self) -> str:
        return str(self.args[0])


def driver_spec(name: str) -> DriverSpec:
    """The spec of driver `name`; DriverUnknown (a KeyError) naming the known drivers."""
    try:
        return DRIVER_SPECS[name]
    except KeyError:
        raise DriverUnknown(f"no driver {name!r}; drivers: {', '.join(DRIVER_SPECS)}") from None


def settings_of(dcd: Dcd, kind: type[T]) -> T:
    """`dcd`'s settings as the driver's typed settings, checked by the same rules as the DCD loader.

    Absent keys take their spec's default. Raises DriverSettingsInvalid (a
    DeviceError, code `bad_settings`) naming each bad setting.
    """
    spec = driver_spec(dcd.driver)
    if not issubclass(spec.settings_type, kind):
        raise DriverUnknown(f"driver {dcd.driver} has {spec.settings_type.__name__}, not {kind.__name__}")
    f = Fields(YamlDoc(f"{dcd.source} (module {dcd.module})", dict(dcd.settings)), [])
    values: dict[str, Any] = spec.read_settings(f)
    if f.problems:
        raise DriverSettingsInvalid(f.problems)
    typed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    result: T = spec.settings_type(**typed)
    return result
