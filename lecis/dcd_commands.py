"""The commands of a DCD: a driver's built-in ones (from its spec), and checking the ones a DCD declares.

A command's `wire` template is filled only from parameters checked against
their schema, so nothing a controller sends reaches an instrument unchecked.
"""

from __future__ import annotations

import re
import string
from dataclasses import replace
from typing import Any, cast

from lecis.dcd import CommandSpec, ParamSpec, ParamType
from lecis.driver_specs import DriverSpec, driver_spec
from lecis.errors import CommandInvalid
from lecis.states import STANDARD_COMMANDS
from lecis.yaml_loader import MISSING, Fields, YPath, describe

NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
NAME_RULE = "lower-case letters, digits and _, starting with a letter, up to 32 characters"

PARAM_TYPES = ("number", "integer", "string", "boolean")
COMMAND_KEYS = ("wire", "expect", "description", "params")
PARAM_KEYS = ("type", "min", "max", "enum", "required", "default", "unit", "max_length")


def compile_regex(f: Fields, path: YPath, text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        f.problem(path, f"not a valid regular expression: {exc.msg} at position {exc.pos}")
        return None


def builtin_commands(driver: str, settings: dict[str, Any]) -> tuple[CommandSpec, ...]:
    """The device commands a driver offers whatever its DCD says."""
    return driver_spec(driver).commands(settings)


def declared_commands(f: Fields, spec: DriverSpec, settings: dict[str, Any]) -> tuple[CommandSpec, ...]:
    commands = list(spec.commands(settings))
    path: YPath = ("commands",)
    if not spec.extensible:
        if f.value(path) is not MISSING:
            names = ", ".join(c.name for c in commands)
            f.problem(path, f"{spec.name} has fixed commands ({names}); a DCD cannot add others")
        return tuple(commands)
    given = f.mapping(path, None, what="a mapping of command name to {wire, expect, description, params}")
    for name in given or {}:
        command = _command(f, path + (name,), name)
        index = next((i for i, c in enumerate(commands) if c.name == name), None)
        if command is not None and index is not None:
            commands[index] = command
        elif command is not None:
            commands.append(command)
    return tuple(commands)


def _command(f: Fields, path: YPath, name: str) -> CommandSpec | None:
    if name.upper() in STANDARD_COMMANDS:
        f.problem(path, f"{name!r} is the standard LECIS command {name.upper()}; choose another name")
    elif name == "lease" or name.startswith("lease."):
        f.problem(path, "lease commands belong to the unit; choose another name")
    elif not NAME.match(name):
        f.problem(path, f"command names are {NAME_RULE}")
    if f.mapping(path, COMMAND_KEYS, what="a mapping with wire, expect, description, params") is None:
        return None
    params: dict[str, ParamSpec] = {}
    for pname in f.mapping(path + ("params",), None, what="a mapping of parameter name to its schema") or {}:
        param = _param(f, path + ("params", pname), pname)
        if param is not None:
            params[pname] = param
    wire = f.string(path + ("wire",), None, required=True,
                    expected="the text sent to the device (e.g. 'Cal,{t:g}')")
    if wire is not None:
        _check_wire(f, path + ("wire",), wire, params)
    expect = f.string(path + ("expect",), None, nullable=True,
                      expected="a regular expression the answer must match")
    compile_regex(f, path + ("expect",), expect)
    description = f.string(path + ("description",), "", allow_empty=True)
    return CommandSpec(name, tuple(params.values()), wire, expect, description)


def _param(f: Fields, path: YPath, name: str) -> ParamSpec | None:
    if not NAME.match(name):
        f.problem(path, f"parameter names are {NAME_RULE}")
    body = f.mapping(path, PARAM_KEYS, what="a mapping with type, min, max, enum, required, default, unit")
    if body is None:
        return None
    ptype = f.string(path + ("type",), "number", choices=PARAM_TYPES)
    numeric = ptype in ("number", "integer")
    for key in ("min", "max") if not numeric else ():
        if key in body:
            f.problem(path + (key,), "min and max apply to number and integer parameters only")
    for key in ("enum", "max_length") if ptype != "string" else ():
        if key in body:
            f.problem(path + (key,), f"{key} applies to string parameters only")
    lo = f.number(path + ("min",), None, nullable=True) if numeric else None
    hi = f.number(path + ("max",), None, nullable=True) if numeric else None
    if lo is not None and hi is not None and lo > hi:
        f.problem(path + ("min",), f"min {lo:g} is above max {hi:g}")
    choices = f.value(path + ("enum",)) if ptype == "string" else MISSING
    if choices is not MISSING and (not isinstance(choices, list) or not choices
                                   or not all(isinstance(c, str) and c for c in choices)):
        f.problem(path + ("enum",), f"expected a list of allowed strings, got {describe(choices)}")
        choices = MISSING
    has_default = body.get("default") is not None
    required = f.boolean(path + ("required",), not has_default)
    if required and has_default:
        f.problem(path + ("required",), "a parameter with a default is not required; remove one of the two")
    spec = ParamSpec(name, cast(ParamType, ptype if ptype in PARAM_TYPES else "number"),
                     required and not has_default, lo, hi,
                     None if choices is MISSING else tuple(choices),
                     f.integer(path + ("max_length",), 64, minimum=1, maximum=1000),
                     None, f.string(path + ("unit",), None, nullable=True))
    if not has_default:
        return spec
    try:
        return replace(spec, default=spec.check(body["default"]))
    except CommandInvalid as exc:
        f.problem(path + ("default",), f"the default does not fit: {exc.message}")
        return replace(spec, required=True)  # no second problem about a missing value


def _sample(param: ParamSpec) -> Any:
    """A value of the parameter's type, to try the wire template with."""
    if param.default is not None:
        return param.default
    if param.type in ("number", "integer"):
        value = param.minimum if param.minimum is not None else (param.maximum or 1)
        return int(value) if param.type == "integer" else float(value)
    if param.type == "boolean":
        return True
    return param.choices[0] if param.choices else "a"


def _check_wire(f: Fields, path: YPath, wire: str, params: dict[str, ParamSpec]) -> None:
    if "\r" in wire or "\n" in wire:
        f.problem(path, "must be one line: the driver adds the line ending")
    try:
        parts = list(string.Formatter().parse(wire))
    except ValueError as exc:
        f.problem(path, f"not a valid template: {exc} (write {{{{ and }}}} for literal braces)")
        return
    fine = True
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        declared = ", ".join(params) or "none"
        if field_name not in params:
            f.problem(path,
                      f"placeholder {{{field_name}}} is not a declared parameter (parameters: {declared})")
        elif conversion or "{" in (spec or ""):
            f.problem(path, f"placeholder {{{field_name}}} may carry a format (e.g. :.2f) and nothing else")
        elif not params[field_name].required and params[field_name].default is None:
            f.problem(path, f"placeholder {{{field_name}}} needs a value: make the parameter required "
                            "or give it a default")
        else:
            continue
        fine = False
    if fine:
        try:
            wire.format(**{p.name: _sample(p) for p in params.values()})
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            f.problem(path, f"cannot be filled with the parameters' values: {exc}")

