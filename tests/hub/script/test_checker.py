"""Every validation error class of a script, at its exact line and column.

Each case is the small valid script below with one mistake; `@` marks the
character the problem must point at (it is removed before checking).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.script.errors import ScriptError, ScriptProblem
from hub.script.loader import parse_script
from hub.script.units import capabilities_for
from lecis.wire.birth import Birth

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

BASE = """\
experiment: test
units: {bench-1: unit.yaml}
duration: 6h
variables: {do_high: 7.0, cycles: 0, mode: "run", armed: true}
signals:
  our: {slope: bench-1/do1.do_mg, window: 5m, scale: -3600}
loops:
  ph: {onoff: bench-1/base_pump, input: bench-1/ph1.ph, on_below: 6.9, off_above: 7.05}
guards:
  probe: {while: stale(bench-1/ph1.ph), hold: {bench-1/base_pump: off}}
tasks:
  - name: aerate
    at: 0s
    do: [{bench-1/aeration: on}]
"""


@pytest.fixture(scope="module")
def births() -> dict[str, Birth]:
    return capabilities_for(EXAMPLES / "respirometry.yaml", {"bench-1": "unit.yaml"})


def located(text: str) -> tuple[str, int, int]:
    """The text without its `@` marker, and the marker's line and column."""
    offset = text.index("@")
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return text[:offset] + text[offset + 1:], line, column


def problems_of(text: str, births: dict[str, Birth]) -> list[ScriptProblem]:
    with pytest.raises(ScriptError) as info:
        parse_script(text, "s.yaml", births)
    return info.value.problems


def task(body: str) -> str:
    return BASE + body


CASES = {
    "unknown unit": (task("  - {name: x, when: @bench-2/do1.do_mg > 3, do: [stop]}\n"),
                     "unknown unit 'bench-2'; did you mean 'bench-1'?"),
    "unknown module": (task("  - {name: x, when: @bench-1/do2.do_mg > 3, do: [stop]}\n"),
                       "unit bench-1 has no module 'do2'; did you mean 'do1'?"),
    "unknown reading": (task("  - {name: x, when: @bench-1/do1.mg_l > 3, do: [stop]}\n"),
                        "module bench-1/do1 has no reading 'mg_l'; the readings of bench-1/do1 are: do_mg, "
                        "do_sat"),
    "a module where a reading belongs": (task("  - {name: x, when: @bench-1/do1 > 3, do: [stop]}\n"),
                                         "bench-1/do1 is a module, not a reading; name one of its readings: "
                                         "bench-1/do1.do_mg, bench-1/do1.do_sat"),
    "unknown variable": (task("  - {name: x, when: bench-1/do1.do_mg > @do_hgh, do: [stop]}\n"),
                         "unknown name 'do_hgh'; expected a reading (unit/module.reading), a signal or a "
                         "variable; did you mean 'do_high'?"),
    "unknown variable in set": (task("  - {name: x, at: 1m, do: [{set: {@cycels: 1}}]}\n"),
                                "unknown variable 'cycels'; declare it under variables:; did you mean "
                                "'cycles'?"),
    "unknown signal": (BASE.replace("input: bench-1/ph1.ph", "input: @ourr"),
                       "unknown name 'ourr'; expected a reading (unit/module.reading) or a signal; did you "
                       "mean 'our'?"),
    "unknown name in a log": (task("  - {name: x, at: 1m, do: [{log: \"DO {@do_hi:.1f}\"}]}\n"),
                              "unknown name 'do_hi'"),
    "division without spaces": (task("  - {name: x, when: @cycles/do_high > 1, do: [stop]}\n"),
                                "'cycles/do_high' reads as a reading name (no spaces around /); to divide, "
                                "write cycles / do_high"),
    "unknown task in after": (task("  - {name: x, after: @aerat, do: [stop]}\n"),
                              "unknown task 'aerat'; did you mean 'aerate'?"),
    "a task after itself": (task("  - {name: x, after: @x, do: [stop]}\n"), "cannot follow itself"),
    "unknown command": (task("  - {name: x, at: 1m, do: [{bench-1/aeration: @of}]}\n"),
                        "bench-1/aeration: aeration has no command 'of'"),
    "unknown argument": (task("  - {name: x, at: 1m, do: [{bench-1/base_pump: {dose: {@mls: 1}}}]}\n"),
                         "bench-1/base_pump: dose takes no parameter 'mls' (parameters: ml); did you mean "
                         "'ml'?"),
    "argument type": (task("  - {name: x, at: 1m, do: [{bench-1/base_pump: {dose: {ml: @two}}}]}\n"),
                      "bench-1/base_pump: ml must be a number, got str"),
    "argument range": (task("  - {name: x, at: 1m, do: [{bench-1/base_pump: {dose: {ml: @-1}}}]}\n"),
                       "bench-1/base_pump: ml must be at least 0.001, got -1"),
    "missing argument": (task("  - {name: x, at: 1m, do: [{bench-1/base_pump: @dose}]}\n"),
                         "bench-1/base_pump: dose needs parameter 'ml'"),
    "unknown unit of a command": (task("  - {name: x, at: 1m, do: [{@bench-3/aeration: on}]}\n"),
                                  "unknown unit 'bench-3'; did you mean 'bench-1'?"),
    "unit command": (task("  - {name: x, at: 1m, do: [{bench-1: @STOP}]}\n"),
                     "unit bench-1 has no unit command 'STOP'; unit commands are ESTOP, CLEAR, RESET"),
    "bad duration": (task("  - {name: x, at: @5 min, do: [stop]}\n"),
                     "expected a duration such as 30s, 5m, 2h, 1h30m or a number of seconds, got '5 min' "
                     "(units are written s, m, h, d: 30s, 5m, 2h)"),
    "bad duration order": (task("  - {name: x, every: @30m1h, do: [stop]}\n"), "got '30m1h'"),
    "at after the end": (task("  - {name: x, at: @7h, do: [stop]}\n"),
                         "at 25200 s is after the end of the experiment (duration 21600 s)"),
    "expression syntax": (task("  - {name: x, when: bench-1/do1.do_mg > @> 3, do: [stop]}\n"),
                          "expected a value, got '>'"),
    "expression syntax in a quoted value": (task('  - {name: x, when: "cycles >= 1 @& true", do: [stop]}\n'),
                                            "unexpected '&'; use 'and'"),
    "expression type": (task("  - {name: x, when: @bench-1/do1.do_mg + 1, do: [stop]}\n"),
                        "expected a condition (true or false), but 'bench-1/do1.do_mg + 1' gives a number"),
    "operand type": (task("  - {name: x, when: @mode and armed, do: [stop]}\n"),
                     "and expects true or false (a condition), got a string"),
    "set type": (task("  - {name: x, at: 1m, do: [{set: {cycles: @mode}}]}\n"),
                 "expected a number, but 'mode' gives a string"),
    "condition reading nothing": (task("  - {name: x, when: @t > 60, do: [stop]}\n"),
                                  "this when condition reads no reading, signal or variable"),
    "duplicate task": (task("  - {name: x, at: 1m, do: [stop]}\n  - {name: @x, at: 2m, do: [stop]}\n"),
                       "duplicate task name 'x' (first given at line 15)"),
    "duplicate loop": (BASE.replace("guards:", "  @ph: {onoff: bench-1/heater, input: bench-1/temp1.temp, "
                                               "on_below: 20, off_above: 21}\nguards:"),
                       "duplicate key 'ph' (first given at line 8)"),
    "variable and signal of one name": (BASE.replace("  our:", "  @cycles:"),
                                        "'cycles' is both a variable and a signal"),
    "reserved name": (BASE.replace("armed: true", "@min: 1"), "'min' is a word of the expression language"),
    "bad name": (BASE.replace("armed: true", "@Armed: 1"), "'Armed' cannot name a variable"),
    "onoff output without on/off": (BASE.replace("onoff: bench-1/base_pump", "onoff: @bench-1/ph1"),
                                    "bench-1/ph1 has no on and no off command"),
    "pid period 0 without speed": (BASE.replace("guards:", "  temp: {pid: bench-1/heater, input: "
                                                "bench-1/temp1.temp, setpoint: 25, kp: 1, period: @0}\n"
                                                "guards:"),
                                   "period 0 sends the output as speed, but bench-1/heater has no speed "
                                   "command"),
    "pid without period": (BASE.replace("guards:", "  @temp: {pid: bench-1/heater, "
                                                   "input: bench-1/temp1.temp, setpoint: 25, "
                                                   "kp: 1}\nguards:"),
                           "missing period: bench-1/heater has no speed command"),
    "pid without pulse": (BASE.replace("guards:", "  temp: {pid: @bench-1/ph1, input: bench-1/temp1.temp, "
                                                  "setpoint: 25, kp: 1, period: 60s}\nguards:"),
                          "bench-1/ph1 has no on and no off and no pulse (or run) command"),
    "pid duty limits": (BASE.replace("guards:", "  temp: {pid: bench-1/heater, input: bench-1/temp1.temp, "
                                                "setpoint: 25, kp: 1, period: 60s, "
                                                "limits: @[0, 2]}\nguards:"),
                        "limits must lie within [0, 1]"),
    "two loops on one output": (BASE.replace("guards:", "  ph2: {onoff: @bench-1/base_pump, input: "
                                             "bench-1/ph1.ph, on_below: 6, off_above: 7}\nguards:"),
                                "bench-1/base_pump is already driven by loop ph"),
    "thresholds without a band": (BASE.replace("off_above: 7.05", "off_above: @6.5"),
                                  "off_above must be above on_below (6.9)"),
    "unknown top-level key": (BASE.replace("duration: 6h", "@duraton: 6h"),
                              "unknown key 'duraton'; did you mean 'duration'?"),
    "unknown task key": (task("  - {name: x, at: 1m, do: [stop], @dleay: 1m}\n"),
                         "unknown key 'dleay'; did you mean 'delay'?"),
    "key of another trigger": (task("  - {name: x, at: 1m, @for: 1m, do: [stop]}\n"),
                               "for does not apply to a task triggered by at"),
    "two triggers": (task("  - {name: x, at: 1m, @every: 5m, do: [stop]}\n"),
                     "a task has one trigger; this one has at and every"),
    "no trigger": (task("  - @{name: x, do: [stop]}\n"), "missing its trigger"),
    "an infinite setpoint": (BASE.replace("guards:", "  temp: {pid: bench-1/heater, input: "
                                          "bench-1/temp1.temp, setpoint: @.inf, kp: 1, period: 1m}\nguards:"),
                             "got inf: not a usable number"),
    "while without every": (task("  - {name: x, @while: cycles > 1, do: [stop]}\n"),
                            "a while task repeats while its condition holds: give every:"),
    "no actions": (task("  - @{name: x, at: 1m}\n"), "missing; expected do: with at least one action"),
    "wrong type": (BASE.replace("window: 5m, scale: -3600", "window: 5m, scale: @fast"),
                   "expected a number, got 'fast'"),
    "wrong type of a section": (BASE.replace("tasks:\n  - name: aerate\n    at: 0s\n    do: "
                                             "[{bench-1/aeration: on}]\n", "tasks: @7\n"),
                                "expected a list of tasks"),
    "unknown action": (task("  - {name: x, at: 1m, do: [{@lg: hi}]}\n"),
                       "unknown action 'lg'; did you mean 'log'?"),
    "unknown run control": (task("  - {name: x, at: 1m, do: [@stp]}\n"),
                            "unknown action 'stp'; did you mean 'stop'?"),
    "a boolean as a command": (task("  - {name: x, at: 1m, do: [{bench-1/aeration: @true}]}\n"),
                               "only true and false are booleans"),
    "missing experiment": (BASE.replace("experiment: test\n", "@"),
                           "missing; expected the experiment's name"),
    "bad on_error": (BASE.replace("duration: 6h", "duration: 6h\non_error: @halt"),
                     "expected one of stop, pause, continue, got 'halt'"),
    "guard with nothing to watch": (BASE.replace("stale(bench-1/ph1.ph)", "@1 > 2"),
                                    "this guard condition reads no reading"),
    "unknown function": (task("  - {name: x, when: @avg(bench-1/do1.do_mg) > 1, do: [stop]}\n"),
                         "unknown function 'avg'"),
    "unknown unit in online()": (task("  - {name: x, when: not online(\"@bench-7\"), do: [stop]}\n"),
                                 "unknown unit 'bench-7'"),
    "unit without a birth": (BASE.replace("units: {bench-1: unit.yaml}",
                                          "units: {bench-1: unit.yaml, bench-2: @dcd}"),
                             "unit bench-2 has published no $birth"),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=str)
def test_each_error_class_at_its_exact_line_and_column(case: str, births: dict[str, Birth]) -> None:
    marked, message = CASES[case]
    text, line, column = located(marked)
    problems = problems_of(text, births)
    assert len(problems) == 1, "\n".join(map(str, problems))
    problem = problems[0]
    if case == "missing experiment":  # a missing key is reported where the document starts
        assert (problem.line, problem.column) == (1, 1)
    else:
        assert (problem.line, problem.column) == (line, column), str(problem)
    assert message in problem.message
    assert str(problem).startswith(f"s.yaml:{problem.line}:{problem.column}: ")


def test_the_base_script_is_valid(births: dict[str, Birth]) -> None:
    script = parse_script(BASE, "s.yaml", births)
    assert [t.name for t in script.tasks] == ["aerate"]


def test_every_problem_at_once_in_file_order(births: dict[str, Birth]) -> None:
    text = task("  - {name: x, when: bench-2/do1.do_mg > 3, do: [{bench-1/aeration: spin}]}\n"
                "  - {name: y, after: nope, do: [{wait: soon}]}\n").replace("duration: 6h", "duraton: 6h")
    problems = problems_of(text, births)
    assert [(p.line, p.column) for p in problems] == sorted((p.line, p.column) for p in problems)
    messages = "\n".join(p.message for p in problems)
    for expected in ("unknown key 'duraton'", "unknown unit 'bench-2'", "no command 'spin'",
                     "unknown task 'nope'", "got 'soon'"):
        assert expected in messages
    assert len(problems) == 5


def test_units_whose_files_fail_are_reported_once_not_per_use(tmp_path: Path) -> None:
    from hub.script.loader import load_script

    path = tmp_path / "s.yaml"
    path.write_text(task("  - {name: x, when: bench-1/do1.do_mg > 3, do: [stop]}\n")
                    .replace("bench-1: unit.yaml", "bench-1: missing.yaml"))
    with pytest.raises(ScriptError) as info:
        load_script(path)
    assert len(info.value.problems) == 1
    problem = info.value.problems[0]
    assert (problem.line, problem.column) == (2, 18) and "missing.yaml does not exist" in problem.message


WRITTEN = {
    "folded over two lines": task("  - name: x\n    when: bench-1/do1.do_mg > 3\n      and @cycls < 2\n"
                                  "    do: [stop]\n"),
    "a block literal": task("  - name: x\n    when: |\n      bench-1/do1.do_mg > 3\n      and @cycls < 2\n"
                            "    do: [stop]\n"),
    "after an escape in double quotes": task('  - {name: x, when: "mode == \\"r\\" and @cycls < 2", '
                                             'do: [stop]}\n'),
    "after a doubled single quote": task("  - {name: x, when: 'mode == ''r'' and @cycls < 2', do: [stop]}\n"),
    "in a log message over two lines": task('  - name: x\n    at: 1m\n    do:\n      - log: "cycle\n'
                                            '          {@cycls}"\n'),
}


@pytest.mark.parametrize("case", sorted(WRITTEN), ids=str)
def test_columns_follow_the_yaml_as_written(case: str, births: dict[str, Birth]) -> None:
    text, line, column = located(WRITTEN[case])
    problems = problems_of(text, births)
    assert len(problems) == 1 and "unknown name 'cycls'" in problems[0].message
    assert (problems[0].line, problems[0].column) == (line, column)
