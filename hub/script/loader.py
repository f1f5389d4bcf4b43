"""A script file -> a checked hub.script.model.Script, or every problem at once (ScriptError).

The YAML goes through the strict loader (YAML 1.2: `on` and `off` stay
strings). Every unit, module, reading, command and argument is checked
against the units' Births: read from the unit configs or DCD folders the
script names (`load_script`), or handed in by the running hub
(`parse_script`). Nothing is returned unless the whole script is sound.
"""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hub.script.actions import Checker
from hub.script.control import check_name, read_guards, read_loops, read_signals
from hub.script.durations import MIN_PERIOD_S
from hub.script.errors import ScriptError, ScriptProblem
from hub.script.model import Position, Script, Value
from hub.script.reader import Reader
from hub.script.symbols import Symbols
from hub.script.tasks import read_tasks
from hub.script.units import read_capabilities
from lecis.errors import ConfigError, ConfigProblem
from lecis.topics import UNIT_ID, reserved_unit_id
from lecis.wire.birth import Birth
from lecis.yaml_limits import MAX_BYTES
from lecis.yaml_loader import YamlDoc, YPath, describe, field_name, parse_yaml

WHAT = "a script: key: value lines such as experiment:, units: and tasks:"
TOP_KEYS = ("experiment", "description", "units", "duration", "stale_after", "on_error", "variables",
            "signals", "loops", "guards", "tasks")
ON_ERROR = ("stop", "pause", "continue")
DEFAULT_STALE_AFTER_S = 30.0
MAX_VARIABLE_CHARS = 1000
_COLUMN = re.compile(r"at column (\d+)")

Capabilities = Callable[[Mapping[str, str], Mapping[str, Position]], tuple[Mapping[str, Birth],
                                                                           list[ScriptProblem]]]


class ScriptFileError(ScriptError):
    """A file that is no script at all: unreadable, not UTF-8, not YAML, not a mapping."""


def load_script(path: Path, *, units_dir: Path | None = None,
                births: Mapping[str, Birth] | None = None) -> Script:
    """Read and check a script file; its units from `births`, else from the files the script names."""
    text = read_script_text(path)
    source = str(path)
    if births is not None:
        return check_script(text, source, _given(births))
    return check_script(text, source, lambda units, where: read_capabilities(path, units, units_dir, where))


def parse_script(text: str, source: str, capabilities: Mapping[str, Birth]) -> Script:
    """Check script text against the units' Births (pure); raises ScriptError."""
    return check_script(text, source, _given(capabilities))


def read_script_text(path: Path) -> str:
    """The text of a script file; ScriptFileError when it cannot be read as UTF-8 text."""
    source = str(path)

    def refuse(message: str, line: int | None = None) -> ScriptFileError:
        return ScriptFileError([ScriptProblem(source, line, None, message)])

    try:
        mode = path.stat().st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISDIR(mode):
            raise refuse("cannot read the file: it is a folder, pipe or socket, not a file")
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise refuse("file does not exist") from None
    except OSError as exc:
        raise refuse(f"cannot read the file: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise refuse(f"cannot read the file: larger than {MAX_BYTES // 1000} kB; a script is a few kB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise refuse(f"byte 0x{raw[exc.start]:02x} is not UTF-8 text; save the file as UTF-8", line) from None


def _given(births: Mapping[str, Birth]) -> Capabilities:
    def capabilities(units: Mapping[str, str], where: Mapping[str, Position]
                     ) -> tuple[Mapping[str, Birth], list[ScriptProblem]]:
        problems = [ScriptProblem(where[u].file, where[u].line, where[u].column,
                                  f"unit {u} has published no $birth: is it running and connected?")
                    for u in units if u not in births]
        return {u: births[u] for u in units if u in births}, problems
    return capabilities


def check_script(text: str, source: str, capabilities: Capabilities) -> Script:
    """Check `text` with the units' Births from `capabilities(units, where)`; raises ScriptError."""
    if not isinstance(text, str) or len(text) > MAX_BYTES:
        raise ScriptFileError([ScriptProblem(source, None, None, f"a script is text of at most "
                                                                 f"{MAX_BYTES // 1000} kB")])
    try:
        doc = parse_yaml(text, source, WHAT)
    except ConfigError as exc:
        raise ScriptFileError([_from_config(p, None) for p in exc.problems]) from None
    reader = Reader(doc, text)
    refused = {field_name(path): path for path in doc.refused}
    reader.problems += [_from_config(p, reader, refused) for p in doc.problems]
    reader.mapping((), TOP_KEYS)
    experiment = reader.string(("experiment",), None, required=True, expected="the experiment's name")
    if experiment is not None and len(experiment) > 100:
        reader.fail(("experiment",), "the experiment's name has at most 100 characters", value=True)
    description = reader.string(("description",), None, expected="a description")
    duration = reader.duration(("duration",), None, positive=True, nullable=True)
    stale_after = reader.duration(("stale_after",), DEFAULT_STALE_AFTER_S, positive=True,
                                  minimum=MIN_PERIOD_S)
    on_error = reader.string(("on_error",), "stop", choices=ON_ERROR) or "stop"
    units = _units(reader)
    where = {unit: reader.value_at(("units", unit)) for unit in units}
    births, unit_problems = capabilities(units, where)
    reader.problems += unit_problems
    symbols = Symbols(births, frozenset(units))
    checker = Checker(reader, symbols)
    symbols.variables.update(_variables(checker))
    signals = read_signals(checker)
    loops = read_loops(checker)
    guards = read_guards(checker)
    tasks = read_tasks(checker, duration)
    if reader.problems or experiment is None:
        raise ScriptError(_ordered(reader.problems, source))
    extra: dict[str, Any] = {"description": description} if description else {}
    return Script(experiment, source, text, dict(units), duration, stale_after or DEFAULT_STALE_AFTER_S,
                  on_error, dict(symbols.variables), signals, loops, guards, tasks,  # type: ignore[arg-type]
                  extra)


def _units(reader: Reader) -> dict[str, str]:
    declared = reader.mapping(("units",), required=True,
                              what="units: unit-id: path of its unit config or DCD folder (relative to the "
                                   "script)")
    out: dict[str, str] = {}
    if declared is not None and not declared:
        reader.fail(("units",), "expected at least one unit: bench-1: unit.yaml")
    for unit in declared or {}:
        if not UNIT_ID.match(unit):
            reader.fail(("units", unit), f"{unit!r} is not a unit id (lower-case letters, digits and -, "
                                         "e.g. bench-1)")
            continue
        if reserved_unit_id(unit) is not None:
            reader.fail(("units", unit), str(reserved_unit_id(unit)))
            continue
        written = reader.string(("units", unit), None, required=True,
                                expected="the path of the unit's config (unit.yaml) or DCD folder")
        if written is not None:
            out[unit] = written
    return out


def _variables(checker: Checker) -> dict[str, Value]:
    reader = checker.reader
    declared = reader.mapping(("variables",), what="variables: name: initial value")
    out: dict[str, Value] = {}
    for name, value in (declared or {}).items():
        path = ("variables", name)
        if not check_name(checker, path, name, "variable"):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            reader.fail(path, f"expected a finite number, got {value}", value=True)
        elif isinstance(value, str) and len(value) > MAX_VARIABLE_CHARS:
            reader.fail(path, f"a text of at most {MAX_VARIABLE_CHARS} characters", value=True)
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
            continue
        elif path not in reader.doc.refused:
            reader.fail(path, f"expected a number, true/false or a text, got {describe(value)}", value=True)
        out[name] = None  # declared: later uses are not reported as unknown a second time
    return out


def _from_config(problem: ConfigProblem, reader: Reader | None,
                 refused: Mapping[str, YPath] | None = None) -> ScriptProblem:
    column = None
    line = problem.line
    found = _COLUMN.search(problem.message)
    path = (refused or {}).get(problem.field or "")
    if found:
        column = int(found.group(1))
    elif reader is not None and path is not None and path in reader.doc.values:
        line, column = reader.doc.values[path]  # a refused value: point at it, not at its key
    elif reader is not None and problem.field:
        column = reader.column_of_word(problem.line, re.sub(r"\[\d+\]$", "", problem.field.split(".")[-1]))
    message = f"{problem.field}: {problem.message}" if problem.field else problem.message
    # The strict loader's bounds are worded for unit files; they hold for scripts as well.
    message = message.replace("a unit config or DCD needs", "a script needs")
    return ScriptProblem(problem.file, line, column, message)


def _ordered(problems: list[ScriptProblem], source: str) -> list[ScriptProblem]:
    """The script's own problems by line and column, then those of unit files; no repeats."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file != source, p.file, p.line or 0, p.column or 0))


def document_of(text: str, source: str) -> YamlDoc:
    """The loaded YAML of a script (for tools that show positions); raises ScriptFileError."""
    try:
        return parse_yaml(text, source, WHAT)
    except ConfigError as exc:
        raise ScriptFileError([_from_config(p, None) for p in exc.problems]) from None
