"""Load and check a Device Capability Dataset (DCD) file into a `lecis.dcd.Dcd`.

Every problem of a file is collected before anything is raised, so a
technician fixes a DCD in one pass. docs/dcd.md describes every key.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from lecis.dcd import Dcd, ReadingSpec
from lecis.dcd_commands import NAME, NAME_RULE, compile_regex, declared_commands
from lecis.driver_specs import DRIVER_SPECS, DriverSpec
from lecis.driver_specs import read_pin as read_pin
from lecis.errors import ConfigError, ConfigProblem, DcdError
from lecis.topics import MODULE_ID
from lecis.yaml_loader import MISSING, Fields, YamlDoc, YPath, load_yaml, parse_yaml

WHAT = "a DCD: key: value lines such as module: and driver:"
MODULE_KEYS = ("module", "driver", "description", "on_controller_loss", "commands", "readings")
MODULE_RULE = "a module id (lower-case letters, digits and _, up to 32 characters, e.g. ph1)"


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
    driver = f.string(("driver",), None, required=True, choices=tuple(DRIVER_SPECS))
    spec = DRIVER_SPECS[driver] if driver else None
    extra = spec.keys if spec else tuple(k for s in DRIVER_SPECS.values() for k in s.keys)
    f.mapping((), MODULE_KEYS + extra)
    description = f.string(("description",), "", allow_empty=True)
    on_loss = f.string(("on_controller_loss",), spec.on_controller_loss if spec else "off",
                       choices=("off", "hold"))
    if spec is None:
        return None, _sorted(f)
    settings = spec.read_settings(f)
    readings = _readings(f, spec, settings)
    commands = declared_commands(f, spec, settings)
    if f.problems or module is None:
        return None, _sorted(f)
    return Dcd(module, spec.name, doc.source, spec.kind, readings, commands,
               "hold" if on_loss == "hold" else "off", description, settings,
               doc.line_of(("module",))), []


def _sorted(f: Fields) -> list[ConfigProblem]:
    return sorted(f.problems, key=lambda p: p.line or 0)


def _readings(f: Fields, spec: DriverSpec, settings: dict[str, Any]) -> tuple[ReadingSpec, ...]:
    path: YPath = ("readings",)
    if spec.kind == "equipment":
        if f.value(path) is not MISSING:
            f.problem(path, "equipment reports no readings; remove this key")
        return ()
    if spec.readings is not None:
        builtin = spec.readings(settings)
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

