"""Unit config checking: the example loads, and problems of the unit and all its DCDs come at once."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lecis.config_loader import check_unit_config, load_unit_config
from lecis.errors import ConfigError
from lecis.unit_config import BrokerConfig, ButtonsConfig, OutboxConfig
from tests.lecis.test_yaml_loader import JSONISH, YAMLISH

EXAMPLE = Path(__file__).parents[2] / "examples" / "unit.yaml"

PH = "module: ph1\ndriver: ezo\nprobe: ph\nport: {port}\n"
TEMP = "module: temp1\ndriver: ezo\nprobe: rtd\nport: /dev/ttyT\n"
PUMP = "module: {module}\ndriver: gpio.pump\npin: {pin}\nmax_on_s: 60\n"


def write_unit(tmp_path: Path, unit: str, dcds: dict[str, str]) -> Path:
    (tmp_path / "dcd").mkdir()
    for name, text in dcds.items():
        (tmp_path / "dcd" / name).write_text(text)
    path = tmp_path / "unit.yaml"
    path.write_text(unit)
    return path


def problems_of(path: Path, check_ports: bool = False) -> list[tuple[str, int | None, str | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_unit_config(path, check_ports=check_ports)
    return [(Path(p.file).name, p.line, p.field, p.message) for p in info.value.problems]


def unit_text(*modules: str, extra: str = "") -> str:
    listed = "".join(f"  - dcd/{m}\n" for m in modules)
    return f"unit: bench-2\ndata_dir: data\nmodules:\n{listed}{extra}"


def test_the_example_unit_loads() -> None:
    config = load_unit_config(EXAMPLE, check_ports=False)
    assert config.unit == "bench-1"
    assert config.source == str(EXAMPLE)
    assert config.broker == BrokerConfig(host="127.0.0.1", port=1883)
    assert config.data_dir == EXAMPLE.parent / "var" / "bench-1"
    modules = ["ph1", "do1", "temp1", "turbidity1", "base_pump", "aeration", "heater"]
    assert [m.module for m in config.modules] == modules
    assert config.buttons == ButtonsConfig(start_pin=5, stop_pin=6, estop_hold_s=2.0)
    assert config.status_led_pin == 13
    assert (config.topic_root, config.outbox, config.max_lease_ttl_s) == ("lab", OutboxConfig(), 300.0)


def test_the_example_names_ports_this_machine_lacks() -> None:
    seen: list[str] = []
    check_unit_config(EXAMPLE, exists=lambda port: seen.append(port) is None)
    assert len(seen) == 4  # one look per serial instrument
    with pytest.raises(ConfigError) as info:
        check_unit_config(EXAMPLE, exists=lambda port: "A10K5ZTS" not in port)
    [problem] = info.value.problems
    assert (Path(problem.file).name, problem.line, problem.field) == ("ph1.yaml", 9, "port")
    assert problem.message == ("port /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K5ZTS-if00-port0 does not "
                               "exist; is the instrument plugged in?")


def test_missing_serial_port(tmp_path: Path) -> None:
    path = write_unit(tmp_path, unit_text("ph1.yaml"), {"ph1.yaml": PH.format(port="/dev/ttyUSB9")})
    assert problems_of(path, check_ports=True) == [
        ("ph1.yaml", 4, "port", "port /dev/ttyUSB9 does not exist; is the instrument plugged in?")]
    (tmp_path / "dcd" / "ph1.yaml").write_text(PH.format(port="/dev/ttyUSB9") + "perod_s: 2\n")
    assert [(line, field) for _, line, field, _ in problems_of(path, check_ports=True)] == [
        (4, "port"), (5, "perod_s")]  # a DCD with another problem still has its port checked
    present = tmp_path / "ttyFAKE"
    present.touch()
    (tmp_path / "dcd" / "ph1.yaml").write_text(PH.format(port=present))
    assert load_unit_config(path).modules[0].settings["port"] == str(present)


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = write_unit(tmp_path, unit_text("p.yaml"), {"p.yaml": PUMP.format(module="p", pin=17)})
    config = load_unit_config(path)
    assert config.data_dir == tmp_path / "data"
    assert config.broker == BrokerConfig()
    assert config.buttons == ButtonsConfig()
    assert config.status_led_pin is None


def test_duplicate_module_id_names_both_files_and_lines(tmp_path: Path) -> None:
    path = write_unit(tmp_path, unit_text("a.yaml", "b.yaml"), {
        "a.yaml": PUMP.format(module="pump", pin=17),
        "b.yaml": "# second\n" + PUMP.format(module="pump", pin=18),
    })
    [(file, line, field, message)] = problems_of(path)
    assert (file, line, field) == ("b.yaml", 2, "module")
    assert message == (f"duplicate module id 'pump': already used by {tmp_path / 'dcd' / 'a.yaml'}:1; "
                       "ids must be unique in a unit")


def test_two_modules_on_one_pin(tmp_path: Path) -> None:
    path = write_unit(tmp_path, unit_text("a.yaml", "b.yaml"), {
        "a.yaml": PUMP.format(module="acid", pin=17),
        "b.yaml": PUMP.format(module="base", pin="GPIO17"),
    })
    assert problems_of(path) == [
        ("b.yaml", 3, "pin", f"pin 17 is already used by module acid ({tmp_path / 'dcd' / 'a.yaml'}:3)")]


def test_module_on_a_button_pin(tmp_path: Path) -> None:
    unit = unit_text("a.yaml", extra="buttons: {start_pin: 5, stop_pin: 5}\n")
    path = write_unit(tmp_path, unit, {"a.yaml": PUMP.format(module="acid", pin=5)})
    assert problems_of(path) == [
        ("unit.yaml", 5, "buttons.stop_pin", f"pin 5 is already used by the start button ({path}:5)"),
        ("a.yaml", 3, "pin", f"pin 5 is already used by the start button ({path}:5)"),
    ]


def test_missing_dcd_file_is_reported_at_its_list_entry(tmp_path: Path) -> None:
    path = write_unit(tmp_path, unit_text("a.yaml", "nope.yaml"), {"a.yaml": PUMP.format(module="a", pin=4)})
    assert problems_of(path) == [
        ("unit.yaml", 5, "modules[1]", f"DCD file {tmp_path / 'dcd' / 'nope.yaml'} does not exist")]


def test_temperature_source_must_be_a_temperature_module_of_the_unit(tmp_path: Path) -> None:
    ph = PH.format(port="/dev/ttyP") + "temperature_source: {source}\n"
    path = write_unit(tmp_path, unit_text("ph1.yaml", "temp1.yaml", "p.yaml"), {
        "ph1.yaml": ph.format(source="temp2"), "temp1.yaml": TEMP, "p.yaml": PUMP.format(module="p", pin=4)})
    assert problems_of(path) == [
        ("ph1.yaml", 5, "temperature_source", "no module 'temp2' in this unit (modules: p, ph1, temp1)")]
    (tmp_path / "dcd" / "ph1.yaml").write_text(ph.format(source="p"))
    [(_, line, _, message)] = problems_of(path)
    assert line == 5 and message.startswith("module 'p' reports no temperature")
    (tmp_path / "dcd" / "ph1.yaml").write_text(ph.format(source="temp1"))
    assert load_unit_config(path, check_ports=False).modules[0].settings["temperature_source"] == "temp1"


def test_problems_of_the_unit_and_every_dcd_come_at_once(tmp_path: Path) -> None:
    unit = """\
unit: Bench_2
broker: {host: hub, port: 70000}
data_dir: data
outbox: {max_messages: 10, sync_intervall_s: 1}
status_led: {pin: 40}
modules: [dcd/ph1.yaml, dcd/p.yaml, dcd/bad.yaml]
"""
    path = write_unit(tmp_path, unit, {
        "ph1.yaml": PH.format(port="/dev/ttyP") + "perod_s: 2\n",
        "p.yaml": "module: p\ndriver: gpio.pump\npin: 4\n",
        "bad.yaml": "module: [x\n",
    })
    assert [(file, line, field) for file, line, field, _ in problems_of(path)] == [
        ("unit.yaml", 1, "unit"),
        ("unit.yaml", 2, "broker.port"),
        ("unit.yaml", 4, "outbox.sync_intervall_s"),
        ("unit.yaml", 4, "outbox.max_messages"),
        ("unit.yaml", 5, "status_led.pin"),
        ("ph1.yaml", 5, "perod_s"),
        ("p.yaml", 1, "max_on_s"),
        ("bad.yaml", 2, None),
    ]


def test_unit_file_shape_problems(tmp_path: Path) -> None:
    path = tmp_path / "unit.yaml"
    path.write_text("unit: bench-2\nmodules: dcd/a.yaml\nbroker: [a]\n")
    assert problems_of(path) == [
        ("unit.yaml", 1, "data_dir", "missing; expected a folder for the unit's data"),
        ("unit.yaml", 2, "modules",
         "expected a list of DCD files with at least one entry (e.g. [dcd/ph1.yaml])"),
        ("unit.yaml", 3, "broker", "expected a mapping such as {host: 127.0.0.1, port: 1883}, got a list"),
    ]
    path.write_text("unit: bench-2\nunit: bench-3\n")
    assert ("unit.yaml", 2, "unit", "duplicate key 'unit' (first given at line 1)") in problems_of(path)


def test_hostile_unit_and_dcd_files_are_problems_of_their_own_files(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefghij", "bcdefghijk", strict=True))
    unit = unit_text("bomb.yaml", "deep.yaml", "big.yaml", "ok.yaml",
                     extra=f"max_lease_ttl_s: {'9' * 400}\noutbox: {{max_messages: {'1' * 30}}}\n")
    path = write_unit(tmp_path, unit, {
        "bomb.yaml": bomb,
        "deep.yaml": "module: deep\ndriver: gpio.switch\npin: 5\nmax_on_s: 1\ncommands: "
                     + "{a: " * 3000 + "}" * 3000 + "\n",
        "big.yaml": f"module: big\ndriver: gpio.pump\npin: {'2' * 400}\nmax_on_s: {'3' * 5000}\n",
        "ok.yaml": PUMP.format(module="ok", pin=17),
    })
    assert [(file, line, field) for file, line, field, _ in problems_of(path)] == [
        ("unit.yaml", 8, "max_lease_ttl_s"),
        ("unit.yaml", 9, "outbox.max_messages"),
        ("bomb.yaml", 5, "e[0]"),
        ("deep.yaml", 5, "commands.a.a.a.a.a..."),
        ("big.yaml", 3, "pin"),
        ("big.yaml", 4, "max_on_s"),
    ]
    assert all("number too large" in m for f, _, _, m in problems_of(path) if f in ("big.yaml", "unit.yaml"))


UNIT_KEYS = st.sampled_from(["unit", "broker", "data_dir", "modules", "outbox", "buttons", "status_led",
                             "max_lease_ttl_s", "topic_root", "host", "port", "pin", "start_pin"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(UNIT_KEYS, JSONISH, max_size=8), st.dictionaries(st.sampled_from(
    ["module", "driver", "pin", "port", "max_on_s", "ml_per_s", "commands", "readings", "probe"]),
    JSONISH, max_size=8), YAMLISH)
def test_fuzz_unit_and_dcd_files_give_config_errors_only(unit: dict[str, Any], dcd: dict[str, Any],
                                                         noise: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "dcd").mkdir()
        (base / "dcd" / "m.yaml").write_text(json.dumps(dcd, ensure_ascii=False), "utf-8", "surrogatepass")
        (base / "dcd" / "n.yaml").write_text(noise, "utf-8", "surrogatepass")
        body = {"unit": "u1", "data_dir": "d", "modules": ["dcd/m.yaml", "dcd/n.yaml"], **unit}
        (base / "unit.yaml").write_text(json.dumps(body, ensure_ascii=False), "utf-8", "surrogatepass")
        try:
            check_unit_config(base / "unit.yaml", None)
        except ConfigError as exc:
            assert exc.problems and all(str(p) for p in exc.problems)
