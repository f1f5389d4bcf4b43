"""Signals, control loops and guards of a script.

    signals: {our: {slope: bench-1/do1.do_mg, window: 5m, scale: -3600}}
    loops:
      ph:   {onoff: bench-1/base_pump, input: bench-1/ph1.ph, on_below: 6.9, off_above: 7.05,
             min_on: 2s, min_off: 20s}
      temp: {pid: bench-1/heater, input: bench-1/temp1.temp, setpoint: 25, kp: 0.5, ki: 0.002,
             limits: [0, 1], period: 120s}
    guards:
      do_probe: {while: stale(bench-1/do1.do_mg), hold: {bench-1/heater: off}}
"""

from __future__ import annotations

from typing import Any

from hub.script.actions import Checker
from hub.script.durations import MIN_PERIOD_S
from hub.script.model import Guard, Loop, OnOffLoop, PidLoop, SendCommand, Signal
from hub.script.reader import NAME, NAME_RULE
from hub.script.symbols import RESERVED
from lecis.command_check import check_against_birth
from lecis.errors import CommandRejected
from lecis.wire.birth import BirthModule
from lecis.yaml_loader import YPath, describe

SIGNAL_KINDS = ("mean", "slope", "min", "max")
ONOFF_KEYS = ("onoff", "input", "on_below", "off_above", "on_above", "off_below", "min_on", "min_off",
              "enabled")
PID_KEYS = ("pid", "input", "setpoint", "kp", "ki", "kd", "limits", "period", "enabled")


def check_name(checker: Checker, path: YPath, name: str, what: str) -> bool:
    if not NAME.match(name):
        checker.reader.fail(path, f"{name!r} cannot name a {what}; expected {NAME_RULE}")
        return False
    if name in RESERVED:
        checker.reader.fail(path, f"{name!r} is a word of the expression language; choose another name")
        return False
    return True


def read_signals(checker: Checker) -> tuple[Signal, ...]:
    reader = checker.reader
    signals = reader.mapping(("signals",), what="signals: name: {mean|slope|min|max: reading, window: 5m}")
    out: list[Signal] = []
    for name, spec in (signals or {}).items():
        path: YPath = ("signals", name)
        if not check_name(checker, path, name, "signal"):
            continue
        if name in checker.symbols.variables:
            reader.fail(path, f"{name!r} is both a variable and a signal; give them different names")
            continue
        spec = reader.mapping(path, (*SIGNAL_KINDS, "window", "scale"), required=True)
        if spec is None:
            continue
        kinds = [k for k in SIGNAL_KINDS if k in spec]
        if len(kinds) != 1:
            reader.fail(path, f"expected exactly one of {', '.join(SIGNAL_KINDS)}: a reading"
                              + (f"; got {' and '.join(kinds)}" if kinds else ""))
            continue
        source = reader.string(path + (kinds[0],), None, required=True,
                               expected="a reading unit/module.reading")
        window = reader.duration(path + ("window",), None, required=True, positive=True,
                                 minimum=MIN_PERIOD_S)
        scale = reader.number(path + ("scale",), 1.0)
        if source is not None and "/" not in source:
            reader.fail(path + (kinds[0],), f"expected a reading unit/module.reading, got {source!r}",
                        value=True)
        elif source is not None and checker.symbols.check_name(reader, source, reader.value_at(
                path + (kinds[0],))) is not None and window is not None:
            out.append(Signal(name, kinds[0], source, window, scale or 1.0, reader.at(path)))  # type: ignore[arg-type]
        checker.symbols.signals.add(name)
    return tuple(out)


def _output(checker: Checker, path: YPath) -> tuple[tuple[str, str], BirthModule | None] | None:
    reader = checker.reader
    target = reader.string(path, None, required=True, expected="an output module unit/module")
    if target is None:
        return None
    unit, slash, module = target.partition("/")
    if not slash or "." in module:
        reader.fail(path, f"expected an output module unit/module (e.g. bench-1/heater), got {target!r}",
                    value=True)
        return None
    return (unit, module), checker.symbols.module(reader, unit, module, reader.value_at(path))


def _lacks(checker: Checker, output: tuple[str, str], commands: tuple[str, ...]) -> list[str]:
    birth = checker.symbols.births[output[0]]
    missing = []
    for cmd in commands:
        try:
            spec = birth.modules[output[1]].command(cmd)
            if spec is None:
                raise KeyError(cmd)
        except KeyError:
            missing.append(cmd)
    return missing


def read_loops(checker: Checker) -> tuple[Loop, ...]:
    reader = checker.reader
    loops = reader.mapping(("loops",),
                           what="loops: name: {onoff: unit/module, ...} or {pid: unit/module, ...}")
    out: list[Loop] = []
    driven: dict[tuple[str, str], str] = {}
    for name, spec in (loops or {}).items():
        path: YPath = ("loops", name)
        if not check_name(checker, path, name, "loop"):
            continue
        if not isinstance(spec, dict) or ("onoff" in spec) == ("pid" in spec):
            reader.fail(path, "expected a loop with one of onoff: unit/module or pid: unit/module")
            continue
        kind = "onoff" if "onoff" in spec else "pid"
        reader.mapping(path, ONOFF_KEYS if kind == "onoff" else PID_KEYS)
        found = _output(checker, path + (kind,))
        input_name = reader.string(path + ("input",), None, required=True,
                                   expected="the reading or signal it controls")
        input_ok = input_name is not None and checker.symbols.check_name(
            reader, input_name, reader.value_at(path + ("input",)), reading_only=True) is not None
        enabled = checker.expression(path + ("enabled",), "boolean", required=False, what="a condition")
        loop = _onoff(checker, path, name, found, input_name) if kind == "onoff" else \
            _pid(checker, path, name, found, input_name)
        if found is not None and found[0] in driven:
            reader.fail(path + (kind,), f"{'/'.join(found[0])} is already driven by loop {driven[found[0]]}; "
                                        "one loop per output", value=True)
            continue
        if found is not None:
            driven[found[0]] = name
        if loop is not None and input_ok:
            out.append(_with_enabled(loop, enabled))
    return tuple(out)


def _with_enabled(loop: Loop, enabled: Any) -> Loop:
    if isinstance(loop, OnOffLoop):
        return OnOffLoop(loop.name, loop.input, loop.output, loop.on_when_low, loop.on_threshold,
                         loop.off_threshold, loop.min_on_s, loop.min_off_s, loop.position, enabled)
    return PidLoop(loop.name, loop.input, loop.output, loop.setpoint, loop.kp, loop.ki, loop.kd, loop.out_min,
                   loop.out_max, loop.period_s, loop.position, enabled)


def _onoff(checker: Checker, path: YPath, name: str, found: Any, input_name: str | None) -> OnOffLoop | None:
    reader = checker.reader
    if found is not None and found[1] is not None:
        missing = _lacks(checker, found[0], ("on", "off"))
        if missing:
            reader.fail(path + ("onoff",), f"{'/'.join(found[0])} has no {' and no '.join(missing)} command; "
                                           "an onoff loop switches its output on and off", value=True)
            found = None
    low = "on_below" in reader.get(path) or "off_above" in reader.get(path)
    high = "on_above" in reader.get(path) or "off_below" in reader.get(path)
    if low == high:
        reader.fail(path, "expected on_below: and off_above: (dosing up, e.g. base for pH) or on_above: and "
                          "off_below: (e.g. cooling)" + ("; not both pairs" if low else ""))
        return None
    on_key, off_key = ("on_below", "off_above") if low else ("on_above", "off_below")
    on = reader.number(path + (on_key,), None, required=True)
    off = reader.number(path + (off_key,), None, required=True)
    min_on = reader.duration(path + ("min_on",), 0.0) or 0.0
    min_off = reader.duration(path + ("min_off",), 0.0) or 0.0
    if on is None or off is None:
        return None
    if (low and on >= off) or (not low and on <= off):
        reader.fail(path + (off_key,), f"{off_key} must be {'above' if low else 'below'} {on_key} ({on:g}) "
                                       "to leave a band between switching on and off", value=True)
        return None
    if found is None or input_name is None:
        return None
    return OnOffLoop(name, input_name, found[0], low, on, off, min_on, min_off, reader.at(path))


def _pid(checker: Checker, path: YPath, name: str, found: Any, input_name: str | None) -> PidLoop | None:
    reader = checker.reader
    setpoint = checker.expression(path + ("setpoint",), "number",
                                  what="the setpoint (a number or expression)")
    kp = reader.number(path + ("kp",), None, required=True)
    ki = reader.number(path + ("ki",), 0.0, minimum=0) or 0.0
    kd = reader.number(path + ("kd",), 0.0, minimum=0) or 0.0
    limits = _limits(checker, path + ("limits",))
    has_speed = found is not None and found[1] is not None and found[1].command("speed") is not None
    period = reader.duration(path + ("period",), None if not has_speed else 0.0, minimum=MIN_PERIOD_S,
                             zero=True)
    if period is None and not reader.has(path + ("period",)) and found is not None and found[1] is not None:
        reader.fail(path, f"missing period: {'/'.join(found[0])} has no speed command, so the loop "
                          "switches it on for a share of each period (e.g. period: 60s)")
        return None
    if found is not None and found[1] is not None and period is not None:
        if period > 0:
            missing = _lacks(checker, found[0], ("on", "off"))
            if found[1].command("pulse") is None and found[1].command("run") is None:
                missing.append("pulse (or run)")
            if missing:
                reader.fail(path + ("pid",), f"{'/'.join(found[0])} has no {' and no '.join(missing)} "
                                             "command; a pid loop with a period switches its output on "
                                             "for a share of each period", value=True)
                return None
            if limits is not None and not (0 <= limits[0] and limits[1] <= 1):
                reader.fail(path + ("limits",), "with a period the output is a duty from 0 to 1; limits must "
                                                "lie within [0, 1]", value=True)
                return None
        elif not has_speed:
            reader.fail(path + ("period",), f"period 0 sends the output as speed, but {'/'.join(found[0])} "
                                            "has no speed command; give a period such as 60s", value=True)
            return None
        elif limits is not None:
            _check_speed(checker, path, found, limits)
    if setpoint is None or kp is None or limits is None or found is None or input_name is None \
            or period is None:
        return None
    return PidLoop(name, input_name, found[0], setpoint, kp, ki, kd, limits[0], limits[1], period,
                   reader.at(path))


def _check_speed(checker: Checker, path: YPath, found: Any, limits: tuple[float, float]) -> None:
    spec = found[1].command("speed")
    if not spec.params:
        return
    birth = checker.symbols.births[found[0][0]]
    for bound in limits:
        try:
            check_against_birth(birth, found[0][1], "speed", {spec.params[0].name: bound})
        except CommandRejected as exc:
            checker.reader.fail(path + ("limits",), f"limit {bound:g}: {exc.message}", value=True)
            return


def _limits(checker: Checker, path: YPath) -> tuple[float, float] | None:
    reader = checker.reader
    value = reader.get(path)
    if not reader.has(path):
        return 0.0, 1.0
    numbers = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e15 for v in value)
    if not numbers or value[0] >= value[1]:
        reader.fail(path, f"expected [low, high] with low below high, got {describe(value)}", value=True)
        return None
    return float(value[0]), float(value[1])


def read_guards(checker: Checker) -> tuple[Guard, ...]:
    reader = checker.reader
    guards = reader.mapping(("guards",), what="guards: name: {while: condition, hold: {unit/module: off}}")
    out: list[Guard] = []
    for name in guards or {}:
        path: YPath = ("guards", name)
        if not check_name(checker, path, name, "guard"):
            continue
        if reader.mapping(path, ("while", "hold"), required=True) is None:
            continue
        condition = checker.expression(path + ("while",), "boolean", what="a condition")
        if condition is not None and not condition.names and not condition.units:
            reader.fail_at(condition.position, "this guard condition reads no reading, signal, variable or "
                                               "unit, so nothing can make it change")
            condition = None
        outputs: list[SendCommand] = []
        hold = reader.mapping(path + ("hold",), what="hold: {unit/module: command}")
        for target, command in (hold or {}).items():
            sent = checker.command(path + ("hold", target), target, command)
            if sent is not None:
                outputs.append(sent)
        if condition is not None:
            out.append(Guard(name, condition, tuple(outputs), reader.at(path)))
    return tuple(out)
