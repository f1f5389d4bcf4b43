"""The fleet inventory: the example loads; a bad one lists every problem with its line, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from labedge.cli import main
from provisioning.inventory import InventoryInvalid, load_inventory
from tests.provisioning.fleet_files import inventory_text, write_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.yaml"

BAD_UNITS = """\
  - id: bench-a
    site: room-2
    wifi: lab
    modules: [dcd/ph1.yaml]
  - id: Bench_3
    site: room-2
    wifi: lab
    modules: [dcd/ph1.yaml]
  - id: bench-4
    site: room-2
    wifi: lab
    buttons: {start_pin: 5}
    modules:
      - {module: pump, driver: gpio.switch, pin: 5, max_on_s: 10}
      - {module: ph2, driver: ezo, probe: acid, port: /dev/ttyUSB0}
      - dcd/broken.yaml
      - {module: fan, driver: gpio.switch, pin: 17, max_on_s: 10}
      - {module: lamp, driver: gpio.switch, pin: 17, max_on_s: 10}
  - id: bench-5
    site: room-2
    wifi: guest
    modules: [dcd/ph1.yaml]
"""


def test_the_example_inventory_has_two_valid_units() -> None:
    inventory = load_inventory(EXAMPLE)
    assert [unit.id for unit in inventory.units] == ["bench-1", "bench-2"]
    assert [m.module for m in inventory.unit("bench-2").modules] == ["ph1", "temp1", "base_pump"]
    assert inventory.hub.bucket == "labedge-runs"


def test_every_problem_is_listed_with_its_line_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fleet.yaml"
    text = inventory_text(tmp_path, units=("bench-a",)) + BAD_UNITS
    path.write_text(text)
    (tmp_path / "dcd" / "broken.yaml").write_text("module: broken\ndriver: gpio.pump\npin: 40\n")
    lines = text.splitlines()

    def line_of(fragment: str, after: int = 0) -> int:
        return next(i + 1 for i, line in enumerate(lines) if i >= after and fragment in line)

    out = tmp_path / "out"
    assert main(["provision", "fleet", "--inventory", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    second_a = line_of("- id: bench-a", line_of("- id: bench-a"))
    expected = [
        (f"fleet.yaml:{second_a}: units[1].id: duplicate unit id 'bench-a'", "duplicate"),
        (f"fleet.yaml:{line_of('Bench_3')}: units[2].id: expected a unit id that is also a valid hostname",
         "hostname"),
        (f"fleet.yaml:{line_of('module: pump')}: units[3].modules[0]: pin 5 of module pump is already used "
         "by the start button", "pin twice (button)"),
        (f"fleet.yaml:{line_of('module: lamp')}: units[3].modules[4]: pin 17 of module lamp is already used "
         "by module fan", "pin twice (modules)"),
        (f"fleet.yaml:{line_of('probe: acid')}: units[3].modules[1].probe: expected one of", "inline DCD"),
        ("broken.yaml:3: pin: pin 40 does not exist", "DCD file"),
        (f"fleet.yaml:{line_of('wifi: guest')}: units[4].wifi: no network 'guest'", "unknown network"),
    ]
    for fragment, what in expected:
        assert fragment in err, f"{what}: {fragment!r} not in\n{err}"
    assert "nothing was written" in err
    assert not out.exists()


def test_an_inventory_the_unit_would_refuse_is_refused(tmp_path: Path) -> None:
    # Each DCD is fine alone; together they are not (temperature_source names no module of the unit).
    extra = """\
  - id: bench-c
    site: room-2
    wifi: lab
    modules:
      - {module: ph9, driver: ezo, probe: ph, port: /dev/ttyUSB9, temperature_source: temp9}
"""
    path = tmp_path / "fleet.yaml"
    path.write_text(inventory_text(tmp_path, units=("bench-a",)) + extra)
    with pytest.raises(InventoryInvalid) as caught:
        load_inventory(path)
    line = path.read_text().splitlines().index("      - {module: ph9, driver: ezo, probe: ph, port: "
                                               "/dev/ttyUSB9, temperature_source: temp9}") + 1
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}: units[1].modules[0].temperature_source: no module 'temp9' in this unit (modules: "
        "ph9) (unit bench-c would refuse this)"]


def test_missing_sections_and_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("fleet: {ssh_authorized_keys: [my-private-key]}\nhub: {id: hub-1}\nunits: []\n"
                    "wifii: {}\n")
    with pytest.raises(InventoryInvalid) as caught:
        load_inventory(path)
    text = str(caught.value)
    for fragment in ("fleet.ssh_authorized_keys[0]: expected an SSH public key", "hub.broker_host: missing",
                     "units: expected a list of units", "wifii: unknown key 'wifii'; did you mean 'wifi'?",
                     "wifi: missing"):
        assert fragment in text, (fragment, text)


def test_unknown_unit_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_inventory(tmp_path)
    assert main(["provision", "unit", "bench-z", "--inventory", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "no unit 'bench-z' in this inventory (units: bench-a, bench-b)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_text_that_would_break_the_generated_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    text = inventory_text(tmp_path, units=("bench-a",))
    text = text.replace("site: room-1", 'site: "room-1\\nruncmd: [reboot]"')
    text = text.replace("ssid: LabNet", f"ssid: {'x' * 33}")
    text = text.replace(f"config_dir: {tmp_path}/etc", "config_dir: /etc/lab edge")
    text = text.replace("mosquitto_user: ", 'mosquitto_user: "root\\nallow_anonymous true" #')
    path.write_text(text)
    with pytest.raises(InventoryInvalid) as caught:
        load_inventory(path)
    fields = {p.field for p in caught.value.problems}
    assert {"units[0].site", "wifi.lab.ssid", "fleet.config_dir", "hub.mosquitto_user"} <= fields, fields


def test_tls_on_the_plain_port_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not checked here")
    text = inventory_text(tmp_path, port=8883).replace(
        "  mosquitto_user:", "  tls: {ca: c.pem, cert: c.pem, key: c.pem}\n  mosquitto_user:")
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(InventoryInvalid, match="tls_port and port are both 8883"):
        load_inventory(path)
