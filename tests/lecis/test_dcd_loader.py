"""DCD checking: the shipped examples load, and each mistake is reported at its file, line and field."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from lecis.dcd import Dcd
from lecis.dcd_loader import load_dcd, parse_dcd
from lecis.errors import CommandInvalid, DcdError

EXAMPLES = Path(__file__).parents[2] / "examples" / "dcd"

EZO_PH = """\
module: ph1
driver: ezo
probe: ph
port: /dev/ttyUSB0
"""

PUMP = """\
module: base_pump
driver: gpio.pump
pin: 17
max_on_s: 60
"""

LINE = """\
module: turb
driver: line
port: /dev/ttyUSB1
query: "MEAS?"
pattern: '^T=(?P<turbidity>[0-9.]+) NTU'
readings:
  turbidity: {unit: NTU, min: 0, max: 4000}
"""


def problems(text: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(DcdError) as info:
        parse_dcd(text, "x.yaml")
    assert all(p.file == "x.yaml" for p in info.value.problems)
    return [(p.line, p.field, p.message) for p in info.value.problems]


def only(text: str) -> tuple[int | None, str | None, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("name", ["ph1", "do1", "temp1", "turbidity1", "base_pump", "aeration", "heater"])
def test_every_example_loads(name: str) -> None:
    dcd = load_dcd(EXAMPLES / f"{name}.yaml")
    assert dcd.module == name
    assert dcd.source == str(EXAMPLES / f"{name}.yaml")
    assert dcd.line is not None


def test_example_ph_instrument() -> None:
    dcd = load_dcd(EXAMPLES / "ph1.yaml")
    assert (dcd.driver, dcd.kind, dcd.on_controller_loss) == ("ezo", "instrument", "hold")
    assert dcd.settings == {
        "probe": "ph", "port": "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K5ZTS-if00-port0",
        "baudrate": 9600, "period_s": 1.0, "timeout_s": 3.0, "temperature_source": "temp1",
        "do_outputs": ["mg", "%"],
    }
    assert [(r.name, r.unit, r.minimum, r.maximum) for r in dcd.readings] == [("ph", "pH", 2.0, 12.0)]
    cal_mid = dcd.command("cal_mid")
    assert cal_mid is not None and cal_mid.wire == "Cal,mid,{point:.2f}"
    assert cal_mid.wire.format(**cal_mid.validate({})) == "Cal,mid,7.00"


def test_example_pump_and_line_instrument() -> None:
    pump = load_dcd(EXAMPLES / "base_pump.yaml")
    assert (pump.kind, pump.on_controller_loss, pump.readings) == ("equipment", "off", ())
    assert pump.settings["pin"] == 17 and pump.settings["ml_per_s"] == 0.85
    assert [c.name for c in pump.commands] == ["on", "off", "run", "dose"]
    turb = load_dcd(EXAMPLES / "turbidity1.yaml")
    assert turb.settings["query"] == "MEAS?" and turb.settings["write_terminator"] == "\r\n"
    match = re.match(turb.settings["pattern"], "T=12.3 NTU")
    assert match is not None and match.group("turbidity") == "12.3"


def test_defaults_per_driver() -> None:
    dcd = parse_dcd(LINE)
    assert dcd.settings == {
        "port": "/dev/ttyUSB1", "baudrate": 9600, "period_s": 1.0, "timeout_s": 3.0, "query": "MEAS?",
        "write_terminator": "\r\n", "read_terminator": "\n", "encoding": "ascii",
        "pattern": "^T=(?P<turbidity>[0-9.]+) NTU",
    }
    pump = parse_dcd(PUMP)
    assert pump.settings == {"pin": 17, "active_high": True, "max_on_s": 60.0, "min_off_s": None,
                             "ml_per_s": None, "max_ml_per_hour": None, "pwm": False,
                             "pwm_frequency_hz": 100.0}
    assert parse_dcd(PUMP.replace("gpio.pump", "gpio.switch")).on_controller_loss == "off"


def test_builtin_ezo_readings_and_commands_per_probe() -> None:
    ph = parse_dcd(EZO_PH)
    assert [c.name for c in ph.commands] == ["info", "led_on", "led_off", "device_status", "cal_query",
                                             "cal_clear", "cal_mid", "cal_low", "cal_high", "slope"]
    do = parse_dcd(EZO_PH.replace("probe: ph", "probe: do") + 'do_outputs: ["%"]\n')
    assert [(r.name, r.unit) for r in do.readings] == [("do_sat", "%")]
    assert {"cal_atm", "cal_zero", "salinity", "pressure"} <= {c.name for c in do.commands}
    rtd = parse_dcd(EZO_PH.replace("probe: ph", "probe: rtd"))
    assert [(r.name, r.unit, r.minimum, r.maximum) for r in rtd.readings] == [("temp", "°C", -126.0, 1254.0)]
    cal = rtd.command("cal")
    assert cal is not None and cal.wire is not None
    assert cal.wire.format(**cal.validate({"temp": 25})) == "Cal,25"


@pytest.mark.parametrize("pin", ["17", "GPIO17", "BCM17", "gpio17"])
def test_pins_are_normalised_to_bcm_numbers(pin: str) -> None:
    assert parse_dcd(PUMP.replace("pin: 17", f"pin: {pin}")).settings["pin"] == 17


def test_on_and_yes_are_strings_not_booleans() -> None:
    assert only(PUMP + "active_high: yes\n") == (
        5, "active_high", "expected true or false, got 'yes' (only true and false are booleans)")
    assert parse_dcd(PUMP + "on_controller_loss: off\n").on_controller_loss == "off"


def test_wrong_type_says_what_was_expected() -> None:
    assert only(EZO_PH + "period_s: fast\n") == (5, "period_s", "expected a number above 0 and at most 3600, "
                                                                "got 'fast'")
    assert only(EZO_PH + "baudrate: 9601\n")[2].startswith("expected one of 300, 1200")


def test_unknown_key_suggests_the_nearest() -> None:
    assert only(EZO_PH + "perod_s: 2\n") == (5, "perod_s", "unknown key 'perod_s'; did you mean 'period_s'?")


def test_missing_driver_names_the_choices() -> None:
    line, field, message = only("# pH probe\nmodule: ph1\nport: /dev/ttyUSB0\n")
    assert (line, field) == (2, "driver")
    assert message == "missing; expected one of ezo, line, gpio.switch, gpio.pump, bridge, bridge.ain"


def test_duplicate_key_is_reported_with_the_rest() -> None:
    assert problems(EZO_PH + "port: /dev/ttyUSB1\nperiod_s: 0\n") == [
        (5, "port", "duplicate key 'port' (first given at line 4)"),
        (6, "period_s", "expected a number above 0 and at most 3600, got 0"),
    ]


def test_pump_without_max_on_s() -> None:
    _, field, message = only(PUMP.replace("max_on_s: 60\n", ""))
    assert field == "max_on_s" and "every output needs a maximum on-time" in message


def test_pin_that_does_not_exist() -> None:
    assert only(PUMP.replace("pin: 17", "pin: 40")) == (
        3, "pin",
        "pin 40 does not exist on the Raspberry Pi header; use a BCM number 0 to 27 (e.g. 17 or GPIO17)")
    assert only(PUMP.replace("pin: 17", "pin: BOARD11"))[2].startswith("pin BOARD11 does not exist")


def test_bad_regex_names_the_error_and_position() -> None:
    assert only(LINE.replace("NTU'", "NTU('")) == (
        5, "pattern", "not a valid regular expression: missing ), unterminated subpattern at position 29")


def test_pattern_groups_and_readings_must_match() -> None:
    text = LINE.replace("NTU'", "NTU (?P<temp>[0-9.]+)'") + "  extra: {unit: C}\n"
    assert problems(text) == [
        (5, "pattern", "named group 'temp' is not a declared reading; add it under readings:"),
        (8, "readings.extra", "pattern has no named group (?P<extra>...) for this reading"),
    ]


def test_wire_placeholder_must_be_a_declared_parameter() -> None:
    text = EZO_PH + "commands:\n  cal_t:\n    wire: 'T,{temp:g},{tmep}'\n    params:\n      temp: {}\n"
    assert only(text) == (
        7, "commands.cal_t.wire", "placeholder {tmep} is not a declared parameter (parameters: temp)")


def test_wire_must_be_one_line_and_expect_must_compile() -> None:
    text = EZO_PH + "commands:\n  x:\n    wire: \"A\\r\"\n    expect: '(['\n"
    assert problems(text) == [
        (7, "commands.x.wire", "must be one line: the driver adds the line ending"),
        (8, "commands.x.expect", "not a valid regular expression: unterminated character set at position 1"),
    ]


def test_command_names_must_not_clash_with_lecis_or_lease() -> None:
    text = EZO_PH + "commands:\n  status: {wire: S}\n  lease.acquire: {wire: L}\n  Bad: {wire: B}\n"
    assert [(line, field) for line, field, _ in problems(text)] == [
        (6, "commands.status"), (7, "commands.lease.acquire"), (8, "commands.Bad")]


def test_equipment_takes_no_extra_commands_or_readings() -> None:
    found = problems(PUMP + "commands: {x: {wire: X}}\nreadings: {}\n")
    assert [(line, field) for line, field, _ in found] == [(5, "commands"), (6, "readings")]


def test_dcd_command_adds_and_overrides_builtin_ones() -> None:
    text = EZO_PH + """\
commands:
  info: {wire: "i", description: mine}
  temp_comp:
    wire: "T,{t:.1f}"
    expect: '^\\*OK'
    params:
      t: {min: -10, max: 100, default: 25, unit: C}
      mode: {type: string, enum: [fast, slow], required: false}
"""
    dcd = parse_dcd(text)
    info = dcd.command("info")
    assert info is not None and info.description == "mine" and dcd.commands[0] is info
    spec = dcd.command("temp_comp")
    assert spec is not None and spec.wire is not None
    assert spec.validate({}) == {"t": 25.0}
    assert spec.wire.format(**spec.validate({"t": 19.5})) == "T,19.5"
    with pytest.raises(CommandInvalid) as info_err:
        spec.validate({"mode": "medium"})
    assert info_err.value.param == "mode"


def test_param_schema_mistakes() -> None:
    text = EZO_PH + """\
commands:
  x:
    wire: "X,{a}"
    params:
      a: {type: float, min: 5, max: 1, default: 3, required: true}
"""
    found = {field: message for _, field, message in problems(text)}
    assert found == {
        "commands.x.params.a.type": "expected one of number, integer, string, boolean, got 'float'",
        "commands.x.params.a.min": "min 5 is above max 1",
        "commands.x.params.a.required": "a parameter with a default is not required; remove one of the two",
        "commands.x.params.a.default": "the default does not fit: a must be at least 5, got 3",
    }


def test_ezo_ranges_may_only_narrow() -> None:
    assert only(EZO_PH + "readings:\n  ph: {min: -1}\n") == (
        6, "readings.ph.min", "expected a number from 0.001 to 14, got -1")
    assert only(EZO_PH + "readings:\n  orp: {min: 1}\n")[1:] == (
        "readings.orp", "unknown key 'orp'; expected one of: ph")


def test_ezo_probe_specific_keys() -> None:
    text = EZO_PH.replace("probe: ph", "probe: rtd") + "temperature_source: temp2\ndo_outputs: [mg]\n"
    found = [(line, field) for line, field, _ in problems(text)]
    assert found == [(5, "temperature_source"), (6, "do_outputs")]


def test_several_problems_are_reported_at_once_in_line_order() -> None:
    text = """\
module: Ph-1
driver: ezo
probe: orp
port: 12
baudrate: 9601
timeout_s: -1
colour: blue
"""
    assert [(line, field) for line, field, _ in problems(text)] == [
        (1, "module"), (3, "probe"), (4, "port"), (5, "baudrate"), (6, "timeout_s"), (7, "colour")]


def test_invalid_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("module: ph1\ndriver: [ezo\nprobe: ph\n")
    with pytest.raises(DcdError) as info:
        load_dcd(path)
    [problem] = info.value.problems
    assert (problem.file, problem.line) == (str(path), 3)
    assert problem.message.startswith("not valid YAML at column")


def pump_with(extra: str) -> Dcd:
    return parse_dcd(PUMP + "ml_per_s: 0.5\n" + extra)


def test_pump_commands_follow_its_settings() -> None:
    plain = pump_with("")
    run = plain.command("run")
    assert run is not None and [p.name for p in run.params] == ["seconds"]
    assert parse_dcd(PUMP).command("dose") is None  # no dose in ml without ml_per_s
    pwm = pump_with("pwm: true\n")
    on = pwm.command("on")
    assert on is not None and on.validate({"speed": 0.5}) == {"speed": 0.5}
    assert on.validate({}) == {}


@pytest.mark.parametrize(("command", "args", "param", "text"), [
    ("dose", {}, "ml", "dose needs parameter 'ml'"),
    ("dose", {"ml": 0}, "ml", "ml must be at least 0.001, got 0"),
    ("dose", {"ml": True}, "ml", "ml must be a number, got bool"),
    ("run", {"seconds": math.nan}, "seconds", "seconds must be a finite number that fits a float"),
    ("run", {"seconds": 1, "speed": 0.5}, "speed", "run takes no parameter 'speed' (parameters: seconds)"),
    ("run", {"seconds": "5"}, "seconds", "seconds must be a number, got str"),
    ("on", {"speed": 1.5}, "speed", "speed must be at most 1, got 1.5"),
])
def test_builtin_command_arguments_are_validated(command: str, args: dict[str, object], param: str,
                                                 text: str) -> None:
    spec = pump_with("pwm: true\n" if command == "on" else "").command(command)
    assert spec is not None
    with pytest.raises(CommandInvalid) as info:
        spec.validate(args)
    assert info.value.param == param
    assert info.value.message == text


def test_builtin_ezo_calibration_arguments_are_validated() -> None:
    ph = parse_dcd(EZO_PH)
    cal_mid = ph.command("cal_mid")
    assert cal_mid is not None
    with pytest.raises(CommandInvalid, match="point must be at most 14") as info:
        cal_mid.validate({"point": 15})
    assert info.value.param == "point"
    cal = parse_dcd(EZO_PH.replace("probe: ph", "probe: rtd")).command("cal")
    assert cal is not None
    with pytest.raises(CommandInvalid, match="cal needs parameter 'temp'"):
        cal.validate({})


def test_empty_text_is_refused_where_it_means_nothing() -> None:
    expected = (8, "read_terminator", "expected a string, got an empty string")
    assert only(LINE + 'read_terminator: ""\n') == expected
    assert parse_dcd(LINE + 'write_terminator: ""\ndescription: ""\n').settings["write_terminator"] == ""
