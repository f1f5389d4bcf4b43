"""Periods too short for the hub (every, while ... every, pid period, signal window, stale_after) and the
reserved unit id `hub` are refused at check time, at their line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.script.loader import parse_script
from labedge.cli import main
from lecis.wire.birth import Birth
from tests.hub.script.test_checker import BASE, EXAMPLES, births, located, problems_of

__all__ = ["births"]  # the fixture, shared with the checker's tests

PID = ("  temp: {{pid: bench-1/heater, input: bench-1/temp1.temp, setpoint: 25, kp: 1, "
       "period: {period}}}\nguards:")
SHORT = "must be at least 1s"

CASES = {
    "every": (BASE + "  - {name: x, every: @0.000001, do: [stop]}\n", f"every {SHORT}, got 1e-06"),
    "while every": (BASE + "  - {name: x, while: bench-1/ph1.ph > 7, every: @0.5, do: [stop]}\n",
                    f"every {SHORT}, got 0.5"),
    "pid period": (BASE.replace("guards:", PID.format(period="@0.01")), f"period {SHORT} (or 0), got 0.01"),
    "signal window": (BASE.replace("window: 5m", "window: @0.1"), f"window {SHORT}, got 0.1"),
    "stale_after": (BASE.replace("duration: 6h\n", "duration: 6h\nstale_after: @0.2\n"),
                    f"stale_after {SHORT}, got 0.2"),
    "unit id hub": (BASE.replace("units: {bench-1: unit.yaml}",
                                 "units: {bench-1: unit.yaml, @hub: unit.yaml}"),
                    "unit id 'hub' is reserved: hub/... topics are the hub's own"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_too_short_or_reserved_is_refused_where_it_is_written(name: str, births: dict[str, Birth]) -> None:
    marked, message = CASES[name]
    text, line, column = located(marked)
    problems = problems_of(text, births)
    assert [(p.line, p.column) for p in problems if message in p.message] == [(line, column)], problems


@pytest.mark.parametrize("text", [
    BASE + "  - {name: x, every: 1s, do: [stop]}\n",
    BASE + "  - {name: x, at: 1m, do: [{wait: 0}, {wait: 0.5}, stop]}\n",
    BASE.replace("window: 5m", "window: 1s").replace("duration: 6h\n", "duration: 6h\nstale_after: 1s\n"),
])
def test_one_second_and_short_waits_are_fine(text: str, births: dict[str, Birth]) -> None:
    parse_script(text, "s.yaml", births)


def test_script_check_prints_the_minimum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("experiment: fast\n"
                      f"units: {{bench-1: {EXAMPLES / 'unit.yaml'}}}\n"
                      "tasks:\n"
                      "  - {name: a, every: 0.000001, do: [{bench-1/aeration: on}]}\n")
    code = main(["script", "check", str(script)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{script}:4:22: every must be at least 1s, got 1e-06" in out
