"""Load and check a Device Capability Dataset (DCD) file into a `lecis.dcd.Dcd`.

Every problem of a file is collected before anything is raised, so a
technician fixes a DCD in one pass. docs/dcd.md describes every key.
"""

from __future__ import annotations

import codecs
import re
import string
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from lecis.dcd import (
    DRIVERS,
    EZO_PROBES,
    INSTRUMENT_DRIVERS,
    CommandSpec,
    Dcd,
    ParamSpec,
    ParamType,
    ReadingSpec,
)
from lecis.errors import CommandInvalid, ConfigError, ConfigProblem, DcdError
from lecis.states import STANDARD_COMMANDS
from lecis.topics import MODULE_ID
from lecis.yaml_loader import MISSING, Fields, YamlDoc, YPath, describe, load_yaml, parse_yaml

WHAT = "a DCD: key: value lines such as module: and driver:"
MODULE_KEYS = ("module", "driver", "description", "on_controller_loss", "commands", "readings")
SERIAL_KEYS = ("port", "baudrate", "period_s", "timeout_s")
DRIVER_KEYS: dict[str, tuple[str, ...]] = {
    "ezo": ("probe",) + SERIAL_KEYS + ("temperature_source", "do_outputs"),
    "line": SERIAL_KEYS + ("query", "write_terminator", "read_terminator", "encoding", "pattern"),
    "gpio.switch": ("pin", "active_high", "max_on_s"),
    "gpio.pump": ("pin", "active_high", "max_on_s", "ml_per_s", "max_ml_per_hour", "pwm", "pwm_frequency_hz"),
}
BAUDRATES = (300, 1200, 2400, 9600, 19200, 38400, 57600, 115200)
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
NAME_RULE = "lower-case letters, digits and _, starting with a letter, up to 32 characters"
MODULE_RULE = "a module id (lower-case letters, digits and _, up to 32 characters, e.g. ph1)"
PIN_TEXT = re.compile(r"^(?:GPIO|BCM)(\d{1,2})$", re.IGNORECASE)
PARAM_TYPES = ("number", "integer", "string", "boolean")
COMMAND_KEYS = ("wire", "expect", "description", "params")
PARAM_KEYS = ("type", "min", "max", "enum", "required", "default", "unit", "max_length")

EZO_READINGS = {
    "ph": (ReadingSpec("ph", "pH", 0.001, 14.0),),
    "do": (ReadingSpec("do_mg", "mg/L", 0.0, 100.0), ReadingSpec("do_sat", "%", 0.0, 400.0)),
    "rtd": (ReadingSpec("temp", "°C", -126.0, 1254.0),),
}


def _number(name: str, lo: float | None, hi: float | None, unit: str | None = None,
            default: float | None = None) -> ParamSpec:
    return ParamSpec(name, "number", default is None, lo, hi, default=default, unit=unit)


def _cal_point(which: str, default: float) -> CommandSpec:
    point = _number("point", 0, 14, "pH", default)
    return CommandSpec(f"cal_{which}", (point,), f"Cal,{which},{{point:.2f}}", None,
                       f"calibrate the {which} point in a buffer of pH `point`")


EZO_COMMON = (
    CommandSpec("info", (), "i", r"^\?i,", "device type and firmware version"),
    CommandSpec("led_on", (), "L,1", None, "indicator LED on"),
    CommandSpec("led_off", (), "L,0", None, "indicator LED off"),
    CommandSpec("device_status", (), "Status", r"^\?Status,", "reason of last restart and supply voltage"),
    CommandSpec("cal_query", (), "Cal,?", r"^\?Cal,\d", "number of calibration points stored"),
    CommandSpec("cal_clear", (), "Cal,clear", None, "forget the calibration"),
)
EZO_COMMANDS = {
    "ph": (_cal_point("mid", 7.0), _cal_point("low", 4.0), _cal_point("high", 10.0),
           CommandSpec("slope", (), "Slope,?", r"^\?Slope,", "acid and base slope (%) and zero offset (mV)")),
    "do": (CommandSpec("cal_atm", (), "Cal", None, "calibrate in air (atmospheric oxygen)"),
           CommandSpec("cal_zero", (), "Cal,0", None, "calibrate in zero-oxygen solution"),
           CommandSpec("salinity", (_number("us", 0, 100000, "uS/cm"),), "S,{us:g}", None,
                       "salinity compensation, conductivity in uS/cm"),
           CommandSpec("pressure", (_number("kpa", 10, 500, "kPa"),), "P,{kpa:g}", None,
                       "atmospheric pressure compensation in kPa")),
    "rtd": (CommandSpec("cal", (_number("temp", -126, 1254, "°C"),), "Cal,{temp:g}", None,
                        "calibrate to the temperature `temp` of a reference"),),
}


def load_dcd(path: Path) -> Dcd:
    """Load and check one DCD file; raises DcdError listing every problem."""
    dcd, _, problems = read_dcd(path)
    if dcd is None:
        raise DcdError(problems)
    return dcd


def parse_dcd(text: str, source: str = "<dcd>") -> Dcd:
    """Check DCD text (pure); raises DcdError listing every problem."""
    try:
        doc = parse_yaml(text, source, WHAT)
    except ConfigError as exc:
        raise DcdError(exc.problems) from None
    dcd, problems = check_dcd(doc)
    if dcd is None:
        raise DcdError(problems)
    return dcd


def read_dcd(path: Path) -> tuple[Dcd | None, YamlDoc | None, list[ConfigProblem]]:
    """(dcd or None, the loaded document for line look-ups, problems); never raises DcdError."""
    try:
        doc = load_yaml(path, WHAT)
    except ConfigError as exc:
        return None, None, exc.problems
    dcd, problems = check_dcd(doc)
    return dcd, doc, problems


def check_dcd(doc: YamlDoc) -> tuple[Dcd | None, list[ConfigProblem]]:
    """(the Dcd, []) when the document is a sound DCD, else (None, every problem sorted by line)."""
    f = Fields(doc)
    module = f.string(("module",), None, required=True, pattern=MODULE_ID,
                      expected=MODULE_RULE)
    driver = f.string(("driver",), None, required=True, choices=DRIVERS)
    extra = DRIVER_KEYS[driver] if driver else tuple(k for keys in DRIVER_KEYS.values() for k in keys)
    f.mapping((), MODULE_KEYS + extra)
    description = f.string(("description",), "", allow_empty=True)
    kind = "instrument" if driver in INSTRUMENT_DRIVERS else "equipment"
    on_loss = f.string(("on_controller_loss",), "hold" if kind == "instrument" else "off",
                       choices=("off", "hold"))
    if driver is None:
        return None, _sorted(f)
    settings = _SETTINGS[driver](f)
    readings = _readings(f, driver, settings)
    commands = _commands(f, driver, settings)
    if f.problems or module is None:
        return None, _sorted(f)
    return Dcd(module, driver, doc.source, "instrument" if kind == "instrument" else "equipment", readings,
               commands, "hold" if on_loss == "hold" else "off", description, settings,
               doc.line_of(("module",))), []


def _sorted(f: Fields) -> list[ConfigProblem]:
    return sorted(f.problems, key=lambda p: p.line or 0)


def read_pin(f: Fields, path: YPath, *, required: bool = False, nullable: bool = False) -> int | None:
    """A BCM pin number from `17`, `GPIO17` or `BCM17`; anything else is a problem."""
    value = f.value(path)
    if value is MISSING or (value is None and nullable):
        if required:
            f.problem(path, "missing; expected a BCM pin number 0 to 27 (e.g. 17 or GPIO17)")
        return None
    match = PIN_TEXT.match(value) if isinstance(value, str) else None
    number = int(match.group(1)) if match else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 27:
        shown = value if isinstance(value, (int, str)) and not isinstance(value, bool) else describe(value)
        f.problem(path, f"pin {shown} does not exist on the Raspberry Pi header; "
                        "use a BCM number 0 to 27 (e.g. 17 or GPIO17)")
        return None
    return number


def _serial(f: Fields) -> dict[str, Any]:
    return {
        "port": f.string(("port",), None, required=True, expected="a serial port path (e.g. /dev/ttyUSB0)"),
        "baudrate": f.integer(("baudrate",), 9600, choices=BAUDRATES),
        "period_s": f.number(("period_s",), 1.0, above=0, maximum=3600),
        "timeout_s": f.number(("timeout_s",), 3.0, above=0),
    }


def _ezo(f: Fields) -> dict[str, Any]:
    probe = f.string(("probe",), None, required=True, choices=EZO_PROBES)
    settings = {"probe": probe, **_serial(f)}
    source = f.string(("temperature_source",), None, nullable=True, pattern=MODULE_ID,
                      expected="the module id of a temperature instrument of this unit")
    if source is not None and probe == "rtd":
        f.problem(("temperature_source",), "only pH and DO circuits take temperature compensation")
    settings["temperature_source"] = source
    outputs = f.value(("do_outputs",))
    settings["do_outputs"] = ["mg", "%"]
    if outputs is not MISSING and probe not in ("do", None):
        f.problem(("do_outputs",), "only the DO circuit has do_outputs; remove this key")
    elif outputs is not MISSING:
        if not isinstance(outputs, list) or not outputs or any(o not in ("mg", "%") for o in outputs) \
                or len(set(outputs)) != len(outputs):
            f.problem(("do_outputs",),
                      f'expected a list of "mg" and/or "%" (in quotes), got {describe(outputs)}')
        else:
            settings["do_outputs"] = list(outputs)
    return settings


def _line(f: Fields) -> dict[str, Any]:
    settings = _serial(f)
    settings["query"] = f.string(("query",), None, nullable=True)
    settings["write_terminator"] = f.string(("write_terminator",), "\r\n", allow_empty=True)
    settings["read_terminator"] = f.string(("read_terminator",), "\n")
    settings["encoding"] = f.string(("encoding",), "ascii")
    if "\r" in (settings["query"] or "") or "\n" in (settings["query"] or ""):
        f.problem(("query",), "must be one line; write_terminator is added when it is sent")
    try:
        codecs.lookup(settings["encoding"])
    except LookupError:
        f.problem(("encoding",),
                  f"unknown text encoding {settings['encoding']!r}; use e.g. ascii, latin-1 or utf-8")
    settings["pattern"] = f.string(("pattern",), None, required=True,
                                   expected="a regular expression with a named group per reading "
                                            "(e.g. 'T=(?P<turbidity>[0-9.]+)')")
    return settings


def _gpio(f: Fields, pump: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {"pin": read_pin(f, ("pin",), required=True),
                                "active_high": f.boolean(("active_high",), True)}
    if f.value(("max_on_s",)) is MISSING:
        f.problem(("max_on_s",), "missing; every output needs a maximum on-time in seconds "
                                 "(the unit turns it off when it passes), e.g. max_on_s: 600")
    settings["max_on_s"] = f.number(("max_on_s",), None, above=0)
    if pump:
        settings["ml_per_s"] = f.number(("ml_per_s",), None, above=0, nullable=True)
        settings["max_ml_per_hour"] = f.number(("max_ml_per_hour",), None, above=0, nullable=True)
        if settings["max_ml_per_hour"] is not None and f.value(("ml_per_s",)) in (None, MISSING):
            f.problem(("max_ml_per_hour",),
                      "needs ml_per_s, the pump's calibrated flow, to count millilitres")
        settings["pwm"] = f.boolean(("pwm",), False)
        settings["pwm_frequency_hz"] = f.number(("pwm_frequency_hz",), 100.0, above=0)
    return settings


_SETTINGS: dict[str, Callable[[Fields], dict[str, Any]]] = {
    "ezo": _ezo, "line": _line, "gpio.switch": lambda f: _gpio(f, False),
    "gpio.pump": lambda f: _gpio(f, True)}


def _regex(f: Fields, path: YPath, text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        f.problem(path, f"not a valid regular expression: {exc.msg} at position {exc.pos}")
        return None


def _readings(f: Fields, driver: str, settings: dict[str, Any]) -> tuple[ReadingSpec, ...]:
    path: YPath = ("readings",)
    if driver not in INSTRUMENT_DRIVERS:
        if f.value(path) is not MISSING:
            f.problem(path, "equipment reports no readings; remove this key")
        return ()
    if driver == "ezo":
        if settings["probe"] is None:
            return ()
        builtin = [r for r in EZO_READINGS[settings["probe"]]
                   if r.name != "do_mg" or "mg" in settings["do_outputs"]]
        builtin = [r for r in builtin if r.name != "do_sat" or "%" in settings["do_outputs"]]
        f.mapping(path, [r.name for r in builtin], what="a mapping of reading name to {min, max}")
        return tuple(r if f.mapping(path + (r.name,), ("min", "max"), what="a mapping with min, max") is None
                     else _range(f, path + (r.name,), r) for r in builtin)
    given = f.mapping(path, None, required=True,
                      what="a mapping of reading name to {unit, min, max}, one per named group of pattern")
    if given == {}:
        f.problem(path, "declare at least one reading, e.g. turbidity: {unit: NTU, min: 0, max: 4000}")
    readings = []
    for name in given or {}:
        if not NAME.match(name):
            f.problem(path + (name,), f"reading names are {NAME_RULE}")
        if f.mapping(path + (name,), ("unit", "min", "max"), what="a mapping with unit, min, max") is None:
            continue
        unit = f.string(path + (name, "unit"), None, required=True, expected="a unit (e.g. NTU)")
        readings.append(_range(f, path + (name,), ReadingSpec(name, unit or "", None, None)))
    pattern = _regex(f, ("pattern",), settings["pattern"])
    if pattern is not None and given is not None:
        for group in pattern.groupindex:
            if group not in given:
                f.problem(("pattern",),
                          f"named group {group!r} is not a declared reading; add it under readings:")
        for name in given:
            if name not in pattern.groupindex:
                f.problem(path + (name,), f"pattern has no named group (?P<{name}>...) for this reading")
    return tuple(readings)


def _range(f: Fields, path: YPath, base: ReadingSpec) -> ReadingSpec:
    """`base` with the min and max given under `path`; a built-in range may only be narrowed."""
    declared = base.minimum is None  # a `line` reading, declared whole in the DCD
    lo = f.number(path + ("min",), None, minimum=base.minimum, maximum=base.maximum, nullable=declared)
    hi = f.number(path + ("max",), None, minimum=base.minimum, maximum=base.maximum, nullable=declared)
    lo = base.minimum if f.value(path + ("min",)) is MISSING else lo
    hi = base.maximum if f.value(path + ("max",)) is MISSING else hi
    if lo is not None and hi is not None and lo >= hi:
        f.problem(path + ("min",), f"min {lo:g} must be below max {hi:g}")
    return replace(base, minimum=lo, maximum=hi)


def builtin_commands(driver: str, settings: dict[str, Any]) -> tuple[CommandSpec, ...]:
    """The device commands a driver offers whatever its DCD says."""
    if driver == "ezo":
        return EZO_COMMON + EZO_COMMANDS.get(settings["probe"], ())
    if driver == "line":
        return ()
    # No upper bound here: the drivers refuse a dose longer than max_on_s and cut
    # a run or pulse at max_on_s, each with a message saying why.
    seconds = _number("seconds", 0.001, None, "s")
    if driver == "gpio.switch":
        return (CommandSpec("on", (), description="switch on (off again after max_on_s at the latest)"),
                CommandSpec("off", (), description="switch off"),
                CommandSpec("pulse", (seconds,), description="switch on for `seconds`, then off"))
    speed = (ParamSpec("speed", "number", False, 0.0, 1.0),) if settings["pwm"] else ()
    commands = [CommandSpec("on", speed, description="run until off (off after max_on_s at the latest)"),
                CommandSpec("off", (), description="stop"),
                CommandSpec("run", (seconds,) + speed, description="run for `seconds`, then stop")]
    if settings["ml_per_s"] is not None:
        commands.append(CommandSpec("dose", (_number("ml", 0.001, None, "ml"),) + speed,
                                    description="pump `ml` millilitres using the calibrated ml_per_s"))
    return tuple(commands)


def _commands(f: Fields, driver: str, settings: dict[str, Any]) -> tuple[CommandSpec, ...]:
    commands = list(builtin_commands(driver, settings))
    path: YPath = ("commands",)
    if driver not in INSTRUMENT_DRIVERS:
        if f.value(path) is not MISSING:
            names = ", ".join(c.name for c in commands)
            f.problem(path, f"{driver} has fixed commands ({names}); a DCD cannot add others")
        return tuple(commands)
    given = f.mapping(path, None, what="a mapping of command name to {wire, expect, description, params}")
    for name in given or {}:
        spec = _command(f, path + (name,), name)
        index = next((i for i, c in enumerate(commands) if c.name == name), None)
        if spec is not None and index is not None:
            commands[index] = spec
        elif spec is not None:
            commands.append(spec)
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
    _regex(f, path + ("expect",), expect)
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
