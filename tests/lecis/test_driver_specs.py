"""Driver specs: one description per driver that the DCD loader, the drivers and the registry all read."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from edge.drivers.registry import driver_class
from lecis.dcd import CommandSpec, Dcd, ParamSpec
from lecis.dcd_loader import parse_dcd
from lecis.driver_specs import (
    DRIVER_SPECS,
    DriverSettingsInvalid,
    DriverSpec,
    EzoSettings,
    LineSettings,
    PumpSettings,
    SettingSpec,
    SwitchSettings,
    driver_spec,
    settings_of,
)
from lecis.errors import DcdError, DeviceError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dcd"


@pytest.mark.parametrize("name", sorted(DRIVER_SPECS))
def test_every_setting_is_a_field_of_the_typed_settings(name: str) -> None:
    spec = DRIVER_SPECS[name]
    assert [f.name for f in dataclasses.fields(spec.settings_type)] == sorted(
        spec.keys, key=[f.name for f in dataclasses.fields(spec.settings_type)].index)
    assert {f.name for f in dataclasses.fields(spec.settings_type)} == set(spec.keys)
    assert all(s.help for s in spec.settings), "every setting says what it is for"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_loader_and_the_typed_settings_agree_on_every_example(path: Path) -> None:
    dcd = parse_dcd(path.read_text(), str(path))
    typed = settings_of(dcd, object)
    assert type(typed) is DRIVER_SPECS[dcd.driver].settings_type
    as_dict = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(typed).items()}
    assert as_dict == dcd.settings


def hand_built(driver: str, **settings: Any) -> Dcd:
    kind = DRIVER_SPECS[driver].kind
    return Dcd(module="m1", driver=driver, source="m1.yaml", kind=kind, settings=settings)


def test_absent_settings_take_the_spec_default() -> None:
    line = settings_of(hand_built("line", port="/dev/x", pattern="(?P<a>1)"), LineSettings)
    assert (line.baudrate, line.period_s, line.timeout_s) == (9600, 1.0, 3.0)
    assert (line.query, line.write_terminator, line.read_terminator, line.encoding) == (None, "\r\n", "\n",
                                                                                      "ascii")
    ezo = settings_of(hand_built("ezo", port="/dev/x", probe="do"), EzoSettings)
    assert ezo.do_outputs == ("mg", "%") and ezo.temperature_source is None
    pump = settings_of(hand_built("gpio.pump", pin=17, max_on_s=5), PumpSettings)
    assert (pump.min_off_s, pump.ml_per_s, pump.pwm, pump.pwm_frequency_hz) == (None, None, False, 100.0)
    assert isinstance(pump, SwitchSettings)


@pytest.mark.parametrize(("driver", "settings", "field", "says"), [
    ("gpio.switch", {"pin": True, "max_on_s": 5}, "pin", "does not exist on the Raspberry Pi header"),
    ("gpio.switch", {"pin": 17}, "max_on_s", "every output needs a maximum on-time"),
    ("gpio.switch", {"pin": 17, "max_on_s": 0}, "max_on_s", "above 0"),
    ("gpio.switch", {"pin": 17, "max_on_s": 5, "min_off_s": -1}, "min_off_s", "at least 0"),
    ("gpio.pump", {"pin": 17, "max_on_s": 5, "max_ml_per_hour": 10}, "max_ml_per_hour", "needs ml_per_s"),
    ("line", {"port": "/dev/x", "pattern": "p", "encoding": "klingon"}, "encoding", "unknown text encoding"),
    ("ezo", {"port": "/dev/x", "probe": "orp"}, "probe", "one of ph, do, rtd"),
    ("ezo", {"port": "/dev/x", "probe": "ph", "baudrate": 9601}, "baudrate", "one of 300"),
])
def test_bad_settings_are_named_as_the_loader_names_them(driver: str, settings: dict[str, Any], field: str,
                                                         says: str) -> None:
    with pytest.raises(DriverSettingsInvalid) as caught:
        settings_of(hand_built(driver, **settings), object)
    error = caught.value
    assert isinstance(error, DeviceError) and error.code == "bad_settings"
    assert [p.field for p in error.problems] == [field] and says in error.message
    # The DCD loader gives the same problem for the same value.
    text = f"module: m1\ndriver: {driver}\n" + "".join(f"{k}: {_yaml(v)}\n" for k, v in settings.items())
    with pytest.raises(DcdError) as loaded:
        parse_dcd(text, "m1.yaml")
    assert [p.message for p in loaded.value.problems if p.field == field] == [error.problems[0].message]


def _yaml(value: Any) -> str:
    return "true" if value is True else str(value)


def test_gpio_min_off_s_is_an_optional_number_defaulting_to_the_drivers_own() -> None:
    spec = {s.name: s for s in driver_spec("gpio.pump").settings}["min_off_s"]
    assert spec.describe() == {"type": "number", "required": False, "min": 0, "nullable": True,
                               "help": spec.help}
    assert parse_dcd("module: v1\ndriver: gpio.switch\npin: 5\nmax_on_s: 9\nmin_off_s: 0.5\n"
                     ).settings["min_off_s"] == 0.5
    assert parse_dcd("module: v1\ndriver: gpio.switch\npin: 5\nmax_on_s: 9\n").settings["min_off_s"] is None


@dataclasses.dataclass(frozen=True)
class BlinkSettings:
    pin: int
    blinks: int


BLINK = DriverSpec(
    "gpio.blink", "equipment", "a lamp that blinks", "tests.edge.module_fakes:ControllableDriver",
    (SettingSpec("pin", "pin", "the lamp's pin", required=True),
     SettingSpec("blinks", "integer", "how many times", default=3, minimum=1, maximum=10)),
    BlinkSettings,
    lambda settings: (CommandSpec("blink", (ParamSpec("times", "integer", False, 1, settings["blinks"]),)),),
)


def test_a_new_driver_needs_only_its_spec_and_its_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DRIVER_SPECS, "gpio.blink", BLINK)
    dcd = parse_dcd("module: lamp1\ndriver: gpio.blink\npin: GPIO4\nblinks: 5\n")
    assert (dcd.kind, dcd.settings, dcd.on_controller_loss) == ("equipment", {"pin": 4, "blinks": 5}, "off")
    blink = dcd.command("blink")
    assert blink is not None and blink.validate({"times": 5}) == {"times": 5}
    assert settings_of(dcd, BlinkSettings) == BlinkSettings(4, 5)
    assert driver_class("gpio.blink").__name__ == "ControllableDriver"
    with pytest.raises(DcdError, match="blinks: expected a whole number from 1 to 10"):
        parse_dcd("module: lamp1\ndriver: gpio.blink\npin: 4\nblinks: 11\n")


def test_specs_describe_themselves_for_tools() -> None:
    described = driver_spec("line").describe()
    assert described["kind"] == "instrument" and described["dcd_commands"] and described["dcd_readings"]
    assert described["settings"]["pattern"]["required"] is True
    assert driver_spec("ezo").describe()["settings"]["baudrate"]["enum"][0] == 300
    assert driver_spec("gpio.pump").describe()["settings"]["pwm_frequency_hz"]["default"] == 100.0


def test_an_unknown_driver_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"drivers: ezo, line, gpio\.switch, gpio\.pump"):
        driver_spec("modbus")
