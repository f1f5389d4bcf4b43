"""Capabilities from files: a unit config or a DCD folder becomes the Birth its unit would publish."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.script.errors import ScriptError
from hub.script.units import capabilities_for
from lecis.command_check import check_against_birth
from lecis.errors import CommandInvalid

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MODULES = ["aeration", "base_pump", "do1", "heater", "ph1", "temp1", "turbidity1"]


def test_a_unit_config_and_a_dcd_folder_give_the_same_modules() -> None:
    births = capabilities_for(EXAMPLES / "respirometry.yaml", {"bench-1": "unit.yaml", "bench-2": "dcd"})
    assert sorted(births["bench-1"].modules) == MODULES
    assert sorted(births["bench-2"].modules) == MODULES
    assert births["bench-2"].unit == "bench-2"
    with pytest.raises(CommandInvalid, match="ml"):
        check_against_birth(births["bench-1"], "base_pump", "dose", {"ml": -1})


def test_units_dir_overrides_the_paths_of_the_script(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "dcd", tmp_path / "bench-9")
    (tmp_path / "bench-9" / "heater.yaml").unlink()
    births = capabilities_for(tmp_path / "elsewhere" / "s.yaml", {"bench-9": "missing.yaml"}, tmp_path)
    assert "heater" not in births["bench-9"].modules and "aeration" in births["bench-9"].modules


def test_missing_files_wrong_unit_and_bad_dcds_are_all_reported(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "dcd", tmp_path / "dcd")
    (tmp_path / "dcd" / "heater.yaml").write_text("module: heater\ndriver: gpio.switch\npin: 99\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScriptError) as info:
        capabilities_for(tmp_path / "s.yaml", {"bench-1": "nope.yaml", "bench-2": str(EXAMPLES / "unit.yaml"),
                                               "bench-3": "dcd", "bench-4": "empty"})
    text = str(info.value)
    assert "unit bench-1:" in text and "does not exist" in text
    assert "is the config of unit 'bench-1'" in text
    assert "heater.yaml:3: pin:" in text
    assert "holds no DCD files" in text
