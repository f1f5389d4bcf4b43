"""A broken or hostile unit (it may publish anything under its own topics) cannot make the view, and so
every page's first frame, grow without end: units, modules per unit and reading names are bounded."""

from __future__ import annotations

import json

import pytest

from hub.web.labview import MAX_MODULES, MAX_READINGS, MAX_UNITS
from lecis.wire import ModuleState
from tests.hub.web.test_labview import unit_state, view

NOW = "2026-11-21T11:00:00.000Z"


def module_state() -> ModuleState:
    return ModuleState.from_json({"lecis": "IDLE", "control": "REMOTE", "ts": NOW, "outputs": {},
                                  "error": None})


def test_a_unit_inventing_modules_and_reading_names_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    lab, _ = view()
    lab.on_unit_state("bad", unit_state("ready", NOW))
    for i in range(MAX_MODULES * 20):
        lab.on_module_state("bad", f"m{i}", module_state())
        lab.on_points("bad", f"p{i}", [(1.0, {"x": 1.0})])
    for i in range(MAX_READINGS * 20):
        lab.on_points("bad", "m0", [(2.0 + i, {f"r{i}": float(i)})])
    shown = lab.units["bad"].to_json()
    assert len(shown["modules"]) == MAX_MODULES
    assert len(lab.units["bad"].modules["m0"].last) == MAX_READINGS
    assert len(json.dumps(lab.snapshot())) < 200_000  # the first frame stays far under a page's 4 MB
    warnings = [r for r in caplog.records if "more than" in r.getMessage()]
    assert len(warnings) == 1 and "bad" in warnings[0].getMessage()
    lab.on_unit_state("good", unit_state("ready", NOW))  # another unit is untouched
    lab.on_module_state("good", "ph1", module_state())
    assert [m["module"] for m in lab.units["good"].to_json()["modules"]] == ["ph1"]


def test_units_beyond_the_bound_are_left_out_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    lab, _ = view()
    for i in range(MAX_UNITS + 50):
        lab.on_unit_state(f"u{i}", unit_state("ready", NOW))
        lab.on_points(f"x{i}", "m", [(1.0, {"x": 1.0})])
    assert len(lab.units) == MAX_UNITS
    assert len([r for r in caplog.records if f"at most {MAX_UNITS} units" in r.getMessage()]) >= 1
    lab.on_module_state("u0", "ph1", module_state())  # a unit already shown goes on
    assert "ph1" in lab.units["u0"].modules
