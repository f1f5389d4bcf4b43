"""What the page is told of a unit: presence since when, module states, outputs switching as marks."""

from __future__ import annotations

from typing import Any

from hub.web.labview import LabView
from lecis.wire import ModuleState, UnitState
from tests.edge.gpio_fixtures import ManualClock


def unit_state(state: str, ts: str) -> UnitState:
    return UnitState.from_json({"state": state, "boot": "x", "ts": ts})


def view() -> tuple[LabView, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    return LabView(ManualClock(), sent.append), sent


def test_presence_since_comes_from_the_unit_then_from_the_hub() -> None:
    lab, _ = view()
    lab.on_unit_state("b1", unit_state("ready", "2026-11-21T11:00:00.000Z"))
    assert lab.units["b1"].since == "2026-11-21T11:00:00.000Z"
    lab.clock._t = 60  # type: ignore[attr-defined]
    lab.on_unit_state("b1", unit_state("lost", "2026-11-21T11:00:00.000Z"))
    assert lab.units["b1"].since == "2026-11-21T12:01:00.000Z"  # the hub saw it go: its own time


def test_a_retained_lost_does_not_claim_a_loss_time() -> None:
    lab, _ = view()
    lab.on_unit_state("b2", unit_state("lost", "2026-11-01T00:00:00.000Z"))
    shown = lab.snapshot()[0]
    assert shown["presence"] == "lost" and shown["since"] is None and not shown["online"]


def test_an_output_that_switches_is_a_mark_and_a_timestamp_beside_it_is_not() -> None:
    lab, sent = view()

    def state(on: bool, since: str) -> ModuleState:
        return ModuleState.from_json({"lecis": "IDLE", "control": "REMOTE", "ts": since,
                                      "outputs": {"on": on, "on_since": since}, "error": None})

    lab.on_module_state("b1", "aeration", state(False, "2026-11-21T12:00:00.000Z"))
    lab.on_module_state("b1", "aeration", state(True, "2026-11-21T12:00:02.000Z"))
    marks = [m for m in sent if m["type"] == "mark"]
    assert [m["label"] for m in marks] == ["aeration on"]
    assert lab.snapshot()[0]["modules"][0]["outputs"]["on"] is True
