"""Load and check a Device Capability Dataset (DCD) file into a `lecis.dcd.Dcd`.

Every problem of a file is collected before anything is raised, so a
technician fixes a DCD in one pass. docs/dcd.md describes every key.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lecis.dcd import (
    DRIVERS,
    EZO_PROBES,
    INSTRUMENT_DRIVERS,
    Dcd,
    ReadingSpec,
)
from lecis.dcd_commands import NAME, NAME_RULE, compile_regex, declared_commands
from lecis.errors import ConfigError, ConfigProblem, DcdError
from lecis.topics import MODULE_ID
from lecis.yaml_loader import MISSING, Fields, YamlDoc, YPath, describe, load_yaml, parse_yaml

WHAT = "a DCD: key: value lines such as module: and driver:"
MODULE_KEYS = ("module", "driver", "description", "on_controller_loss", "commands", "readings")
SERIAL_KEYS = ("port", "baudrate", "period_s", "timeout_s")
DRIVER_KEYS: dict[str, tuple[str, ...]] = {
    "ezo": ("probe",) + SERIAL_KEYS + ("temperature_source", "do_outputs"),
    "line": SERIAL_KEYS + ("query", "write_terminator", "read_terminator", "encoding", "pattern"),
    "gpio.switch": ("pin", "active_high", "max_on_s", "min_off_s"),
    "gpio.pump": ("pin", "active_high", "max_on_s", "min_off_s", "ml_per_s", "max_ml_per_hour", "pwm",
                  "pwm_frequency_hz"),
}
BAUDRATES = (300, 1200, 2400, 9600, 19200, 38400, 57600, 115200)
MODULE_RULE = "a module id (lower-case letters, digits and _, up to 32 characters, e.g. ph1)"
PIN_TEXT = re.compile(r"^(?:GPIO|BCM)(\d{1,2})$", re.IGNORECASE)
EZO_READINGS = {
    "ph": (ReadingSpec("ph", "pH", 0.001, 14.0),),
    "do": (ReadingSpec("do_mg", "mg/L", 0.0, 100.0), ReadingSpec("do_sat", "%", 0.0, 400.0)),
    "rtd": (ReadingSpec("temp", "°C", -126.0, 1254.0),),
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
    commands = declared_commands(f, driver, settings)
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
    # null: the driver's default (edge.drivers.gpio_output.DEFAULT_MIN_OFF_S).
    settings["min_off_s"] = f.number(("min_off_s",), None, minimum=0, nullable=True)
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
    pattern = compile_regex(f, ("pattern",), settings["pattern"])
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

