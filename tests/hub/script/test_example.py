"""The respirometry example: it loads into the model the controller runs, the same from file and from text."""

from __future__ import annotations

from pathlib import Path

from hub.script.errors import EvaluationError
from hub.script.loader import load_script, parse_script
from hub.script.model import Every, Log, OnOffLoop, PidLoop, RunControl, SendCommand, SetVariable, When
from hub.script.template import render_parts
from hub.script.units import capabilities_for

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PATH = EXAMPLES / "respirometry.yaml"


class Env:
    def __init__(self, values: dict[str, float | int | bool]) -> None:
        self.values = values

    def lookup(self, name: str) -> float | int | bool | str | None:
        if name not in self.values:
            raise EvaluationError(f"{name} has no value yet")
        return self.values[name]

    def age(self, name: str) -> float | None:
        return 1.0

    def is_stale(self, name: str) -> bool:
        return name not in self.values

    def unit_online(self, unit: str) -> bool:
        return True


def test_the_example_loads_with_its_loops_signals_guards_and_tasks() -> None:
    script = load_script(PATH)
    assert script.experiment == "respirometry" and script.units == {"bench-1": "unit.yaml"}
    assert script.duration_s == 6 * 3600 and script.on_error == "stop"
    assert {s.name: (s.kind, s.source) for s in script.signals}["our"] == ("slope", "bench-1/do1.do_mg")
    loops = {lp.name: lp for lp in script.loops}
    assert isinstance(loops["ph"], OnOffLoop) and loops["ph"].output == ("bench-1", "base_pump")
    assert loops["ph"].on_when_low and loops["ph"].on_threshold < loops["ph"].off_threshold
    assert isinstance(loops["temp"], PidLoop) and loops["temp"].output == ("bench-1", "heater")
    assert loops["temp"].period_s > 0 and 0 <= loops["temp"].out_min < loops["temp"].out_max <= 1
    assert {g.name for g in script.guards} == {"ph_probe", "temp_probe"}
    commands = [a for t in script.tasks for a in t.actions if isinstance(a, SendCommand)]
    assert {(c.module, c.cmd) for c in commands} == {("aeration", "on"), ("aeration", "off")}  # YAML 1.2
    assert any(isinstance(a, RunControl) and a.action == "stop" for t in script.tasks for a in t.actions)
    assert not any(isinstance(t.trigger, Every) for t in script.tasks)


def test_conditions_and_messages_evaluate_over_plain_values() -> None:
    script = load_script(PATH)
    task = script.task("stop_aeration")
    assert task is not None and isinstance(task.trigger, When)
    variables = dict(script.variables)
    high = float(variables["do_high"])  # type: ignore[arg-type]
    env = Env({**variables, "bench-1/do1.do_mg": high + 0.5, "our": 21.456})  # type: ignore[dict-item]
    assert task.trigger.condition.evaluate(env) is True
    assert "bench-1/do1.do_mg" in task.trigger.condition.names
    report = script.task("report_our")
    assert report is not None
    sets = [a for a in report.actions if isinstance(a, SetVariable)]
    assert [s.name for s in sets][:1] == ["cycles"] and sets[0].value.evaluate(env) == 1
    log = next(a for a in report.actions if isinstance(a, Log))
    assert "OUR 21.46 mg/L/h" in render_parts(log.parts, env)


def test_from_text_with_births_gives_the_same_script() -> None:
    births = capabilities_for(PATH, {"bench-1": "unit.yaml"})
    from_file = load_script(PATH)
    from_text = parse_script(PATH.read_text(encoding="utf-8"), str(PATH), births)
    assert from_text == from_file
    assert load_script(PATH, births=births) == from_file
