"""The one-machine lab's generated files are what `labedge edge run` accepts."""

from __future__ import annotations

import configparser
from pathlib import Path

from labedge.lab_files import write_lab_files
from lecis.config_loader import load_unit_config


def test_lab_files_make_a_valid_unit_and_supervisor_config(tmp_path: Path) -> None:
    conf = write_lab_files(tmp_path, 18830, "/usr/bin/labedge")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(conf)
    programs = {s.split(":", 1)[1] for s in parser.sections() if s.startswith("program:")}
    assert programs == {"broker", "sim-ph1", "sim-do1", "sim-temp1", "unit-bench-1"}
    assert "--pin-factory mock" in parser["program:unit-bench-1"]["command"]
    # The unit starts only once the simulators' ports exist (labedge lab starts it).
    assert parser["program:unit-bench-1"]["autostart"] == "false"
    assert parser["program:sim-ph1"]["autostart"] == "true"
    config = load_unit_config(tmp_path / "bench-1" / "unit.yaml", check_ports=False)
    assert config.broker.port == 18830
    assert {m.module for m in config.modules} == {"ph1", "do1", "temp1", "base_pump", "aeration"}
    assert config.buttons.stop_pin == 6
