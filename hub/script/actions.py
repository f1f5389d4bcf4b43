"""Actions of tasks and guards, checked against the units' Births exactly as the units will check them.

    - {bench-1/aeration: on}                   a module command without arguments
    - {bench-1/base_pump: {dose: {ml: 1}}}     a module command with arguments
    - {bench-1: ESTOP}                         a unit command (ESTOP, CLEAR, RESET)
    - {log: "OUR {our:.1f} mg/L/h"}            or {log: {message: ..., level: warning}}
    - {set: {cycles: cycles + 1}}              variables declared under variables:
    - {wait: 30s}
    - {session: start} / {session: {start: bench-1, name: trial 3}} / {session: {stop: bench-1}}
    - pause / stop
An item may hold several of these keys: they run in the order written.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from hub.script.errors import ExpressionError
from hub.script.expr import ParsedExpression, parse_expression
from hub.script.model import (
    Action,
    Expression,
    Log,
    RunControl,
    SendCommand,
    SessionAction,
    SetVariable,
    Value,
    Wait,
)
from hub.script.nodes import Type, type_of
from hub.script.reader import Reader, did_you_mean
from hub.script.symbols import Symbols
from hub.script.template import Formatted, parse_template
from lecis.command_check import check_against_birth
from lecis.errors import CommandRejected
from lecis.topics import MODULE_ID, UNIT_ID
from lecis.wire.birth import BirthModule
from lecis.yaml_loader import YPath, describe

ACTION_KEYS = ("log", "set", "wait", "session")
RUN_CONTROL = ("stop", "pause")
UNIT_COMMANDS = ("ESTOP", "CLEAR", "RESET")
LEVELS = ("info", "warning", "alarm")


class Checker:
    """Reads expressions and actions of one script, reporting to `reader`, names checked by `symbols`."""

    def __init__(self, reader: Reader, symbols: Symbols) -> None:
        self.reader = reader
        self.symbols = symbols

    # --- expressions --------------------------------------------------------------------------
    def expression(self, path: YPath, want: Type | None, *, required: bool = True,
                   what: str = "an expression") -> ParsedExpression | None:
        value = self.reader.get(path)
        if not self.reader.has(path):
            if required:
                self.reader.fail(path, f"missing; expected {what}")
            return None
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float) and not math.isfinite(value):
            self.reader.fail(path, f"expected {what}, got {value}: not a usable number", value=True)
            return None
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str):
            text = value
        else:
            if path not in self.reader.doc.refused:
                self.reader.fail(path, f"expected {what} written as text, got {describe(value)}", value=True)
            return None
        try:
            locate = self.reader.locator(path, text) if isinstance(value, str) else None
            expr = parse_expression(text, self.reader.value_at(path), locate)
        except ExpressionError as exc:
            self.reader.problems.append(exc.problem)
            return None
        return expr if self.symbols.check_expression(self.reader, expr, want) else None

    # --- actions ------------------------------------------------------------------------------
    def actions(self, path: YPath, *, allow_wait: bool = True) -> tuple[Action, ...]:
        items = self.reader.items(path, "actions")
        if items is None:
            return ()
        out: list[Action] = []
        for index, item in enumerate(items):
            at: YPath = path + (index,) if isinstance(self.reader.get(path), list) else path
            out += self.action(at, item, allow_wait)
        return tuple(out)

    def action(self, path: YPath, item: Any, allow_wait: bool) -> list[Action]:
        where = self.reader.at(path)
        if isinstance(item, str):
            if item in RUN_CONTROL:
                return [RunControl(item, where)]  # type: ignore[arg-type]
            hint = "; a command is written {unit/module: command}" if "/" in item else \
                did_you_mean(item, (*RUN_CONTROL, *ACTION_KEYS), "actions")
            self.reader.fail(path, f"unknown action {item!r}{hint}", value=True)
            return []
        if not isinstance(item, dict) or not item:
            self.reader.fail(path, f"expected an action such as {{log: text}}, {{unit/module: on}} or stop, "
                                   f"got {describe(item)}", value=True)
            return []
        out: list[Action] = []
        for key, value in item.items():
            out += self.keyed(path + (key,), key, value, allow_wait)
        return out

    def keyed(self, path: YPath, key: str, value: Any, allow_wait: bool) -> list[Action]:
        where = self.reader.at(path)
        if key == "log":
            log = self.log(path, value)
            return [] if log is None else [log]
        if key == "set":
            return list(self.set_variables(path, value))
        if key == "wait":
            if not allow_wait:
                self.reader.fail(path, "wait is not allowed here (guards and loops act at once)")
                return []
            seconds = self.reader.duration(path, None, required=True)
            return [] if seconds is None else [Wait(seconds, where)]
        if key == "session":
            session = self.session(path, value)
            return [] if session is None else [session]
        if key in RUN_CONTROL:
            self.reader.fail(path, f"{key} takes no value; write it as a list item: - {key}")
            return []
        command = self.command(path, key, value)
        return [] if command is None else [command]

    def log(self, path: YPath, value: Any) -> Log | None:
        level = "info"
        text_path = path
        if isinstance(value, dict):
            self.reader.mapping(path, ("message", "level"))
            level = self.reader.string(path + ("level",), "info", choices=LEVELS) or "info"
            text_path = path + ("message",)
            value = self.reader.get(text_path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.reader.fail(text_path, f"expected a message (text, in quotes when it holds {{...}}), got "
                                        f"{describe(value) if self.reader.has(text_path) else 'nothing'}",
                             value=True)
            return None
        try:
            locate = self.reader.locator(text_path, value)
            parts = parse_template(value, self.reader.value_at(text_path), locate)
        except ExpressionError as exc:
            self.reader.problems.append(exc.problem)
            return None
        sound = True
        for part in parts:
            if isinstance(part, (ParsedExpression, Formatted)):
                inner = part.inner if isinstance(part, Formatted) else part
                sound = self.symbols.check_expression(self.reader, inner, None) and sound
        if not sound:
            return None
        exprs: tuple[str | Expression, ...] = parts
        return Log(value, exprs, level, self.reader.at(path))  # type: ignore[arg-type]

    def set_variables(self, path: YPath, value: Any) -> list[SetVariable]:
        if not isinstance(value, dict) or not value:
            self.reader.fail(path, f"expected variable: expression pairs such as {{cycles: cycles + 1}}, got "
                                   f"{describe(value)}", value=True)
            return []
        out = []
        for name in value:
            if name not in self.symbols.variables:
                self.reader.fail(path + (name,), f"unknown variable {name!r}; declare it under variables:"
                                 + did_you_mean(name, self.symbols.variables, "variables"))
                continue
            initial = self.symbols.variables[name]
            want: Type | None = type_of(initial) if initial is not None else None
            expr = self.expression(path + (name,), None if want == "any" else want,
                                   what=f"the new value of {name}")
            if expr is not None:
                out.append(SetVariable(name, expr, self.reader.at(path + (name,))))
        return out

    def session(self, path: YPath, value: Any) -> SessionAction | None:
        where = self.reader.at(path)
        units = sorted(self.symbols.units)
        if isinstance(value, str) and value in ("start", "stop"):
            if len(units) != 1:
                self.reader.fail(path, f"this script has {len(units)} units; name the one: "
                                       f"session: {{{value}: {units[0] if units else 'bench-1'}}}")
                return None
            return SessionAction(value, units[0], None, where)  # type: ignore[arg-type]
        if isinstance(value, dict):
            self.reader.mapping(path, ("start", "stop", "name"))
            actions = [a for a in ("start", "stop") if a in value]
            if len(actions) != 1:
                self.reader.fail(path, "expected one of start: UNIT or stop: UNIT")
                return None
            action = actions[0]
            unit = self.reader.string(path + (action,), None, required=True, pattern=UNIT_ID,
                                      expected="a unit id")
            name = self.reader.string(path + ("name",), None, expected="the session's name")
            if action == "stop" and "name" in value:
                self.reader.fail(path + ("name",), "a name is given when a session starts, not when it stops")
            if unit is None:
                return None
            why = self.symbols.unknown_unit(unit)
            if why is not None:
                self.reader.fail(path + (action,), why, value=True)
                return None
            return SessionAction(action, unit, name, where)  # type: ignore[arg-type]
        self.reader.fail(path, f"expected start, stop, {{start: UNIT, name: ...}} or {{stop: UNIT}}, got "
                               f"{describe(value)}", value=True)
        return None

    def command(self, path: YPath, target: str, spec: Any) -> SendCommand | None:
        where = self.reader.at(path)
        unit, slash, module = target.partition("/")
        if not slash:
            if not UNIT_ID.match(unit) or unit not in self.symbols.units:
                keys = (*ACTION_KEYS, *self.symbols.units)
                self.reader.fail(path, f"unknown action {target!r}" + did_you_mean(target, keys, "actions")
                                 + " (commands are written unit/module: command)")
                return None
        elif not UNIT_ID.match(unit) or not MODULE_ID.match(module):
            self.reader.fail(path, f"{target!r} is not unit/module (lower-case ids such as bench-1/heater)")
            return None
        parsed = self.command_spec(path, spec)
        if parsed is None:
            return None
        cmd, args, cmd_path = parsed
        if not slash:
            return self.unit_command(path, unit, cmd, args, cmd_path)
        described = self.symbols.module(self.reader, unit, module, where)
        birth = self.symbols.births.get(unit)
        if described is None or birth is None:
            return None if birth is not None or unit not in self.symbols.units else \
                SendCommand(unit, module, cmd, args, where)
        try:
            check_against_birth(birth, module, cmd, dict(args))
        except CommandRejected as exc:
            self.rejected(exc, target, described, cmd, args, cmd_path)
            return None
        return SendCommand(unit, module, cmd, args, where)

    def rejected(self, exc: CommandRejected, target: str, described: BirthModule, cmd: str,
                 args: dict[str, Value], cmd_path: YPath) -> None:
        """The unit's own refusal, at the command, the unknown argument's name or the bad value."""
        spec = described.command(cmd)
        hint = ""
        if spec is None and exc.param is None:
            close = difflib.get_close_matches(cmd, [c.name for c in described.commands], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
        if exc.param and exc.param in args:
            known = spec is not None and any(p.name == exc.param for p in spec.params)
            if not known and spec is not None:
                close = difflib.get_close_matches(exc.param, [p.name for p in spec.params], n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
            self.reader.fail(cmd_path + (exc.param,), f"{target}: {exc.message}{hint}", value=known)
            return
        self.reader.fail(cmd_path, f"{target}: {exc.message}{hint}", value=True)

    def command_spec(self, path: YPath, spec: Any) -> tuple[str, dict[str, Value], YPath] | None:
        """(command, arguments, path of the command's value) from `on` or `{dose: {ml: 1}}`."""
        if isinstance(spec, str) and spec.strip():
            return spec, {}, path
        if isinstance(spec, dict) and len(spec) == 1:
            cmd, args = next(iter(spec.items()))
            args_path = path + (cmd,)
            if args is None:
                args = {}
            if not isinstance(args, dict):
                self.reader.fail(args_path, f"the arguments of {cmd} are name: value pairs such as "
                                            f"{{ml: 2}}, got {describe(args)}", value=True)
                return None
            for name, arg in args.items():
                if isinstance(arg, (dict, list)):
                    self.reader.fail(args_path + (name,), f"argument {name} must be a plain value, got "
                                                          f"{describe(arg)}", value=True)
                    return None
            return cmd, dict(args), args_path
        if isinstance(spec, dict) and len(spec) > 1:
            self.reader.fail(path, "one command per action; write each in its own item")
            return None
        hint = " (only true and false are booleans; a command is a name: on, off, dose...)" \
            if isinstance(spec, bool) else ""
        self.reader.fail(path, f"expected a command such as on, off or {{dose: {{ml: 1}}}}, got "
                               f"{describe(spec)}{hint}", value=True)
        return None

    def unit_command(self, path: YPath, unit: str, cmd: str, args: dict[str, Value],
                     cmd_path: YPath) -> SendCommand | None:
        if cmd.upper() not in UNIT_COMMANDS:
            self.reader.fail(cmd_path, f"unit {unit} has no unit command {cmd!r}; unit commands are "
                                       f"{', '.join(UNIT_COMMANDS)} (module commands: {unit}/module: cmd)",
                             value=True)
            return None
        if args:
            self.reader.fail(cmd_path, f"{cmd.upper()} takes no arguments", value=True)
            return None
        return SendCommand(unit, None, cmd.upper(), {}, self.reader.at(path))
