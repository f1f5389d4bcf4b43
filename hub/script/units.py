"""What each unit of a script can do, read from files: the `$birth` its unit would publish.

A script names, per unit, a unit config (`unit.yaml`, loaded without checking
that serial ports exist: this runs on a laptop) or a folder of DCD files.
`labedge script check` and `labedge hub simulate` check against these; the
running hub passes the units' real `$birth` instead.

With `units_dir` (`--units DIR`) a unit is looked up as `DIR/<unit>.yaml`
(a unit config) or `DIR/<unit>/` (a DCD folder, or a folder holding a
`unit.yaml`); when neither exists, the path the script gives is taken
relative to DIR instead of the script's folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from hub.script.errors import ScriptError, ScriptProblem
from hub.script.model import Position
from lecis.clock import iso_ts
from lecis.config_loader import load_unit_config
from lecis.dcd import Dcd
from lecis.dcd_loader import read_dcd
from lecis.errors import ConfigError, ConfigProblem
from lecis.version import software_version
from lecis.wire.birth import Birth, BirthModule

OFFLINE_BOOT = "offline"  # the boot id of a birth read from files: no process of the unit runs
MAX_DCD_FILES = 64


def capabilities_for(script_path: Path, units: Mapping[str, str], units_dir: Path | None = None
                     ) -> dict[str, Birth]:
    """The Birth of every unit from its files; raises ScriptError listing every problem."""
    births, problems = read_capabilities(script_path, units, units_dir, {})
    if problems:
        raise ScriptError(problems)
    return births


def read_capabilities(script_path: Path, units: Mapping[str, str], units_dir: Path | None,
                      where: Mapping[str, Position]) -> tuple[dict[str, Birth], list[ScriptProblem]]:
    """(births of the units that could be read, every problem); `where[unit]` locates its entry."""
    births: dict[str, Birth] = {}
    problems: list[ScriptProblem] = []
    for unit, written in units.items():
        at = where.get(unit, Position(str(script_path), 1, 1))
        path = resolve(script_path, unit, written, units_dir)

        def fail(message: str, at: Position = at) -> None:
            problems.append(ScriptProblem(at.file, at.line, at.column, message))

        try:
            dcds = _read(path, unit, fail)
        except ConfigError as exc:
            fail(f"unit {unit}: {path} cannot be used (its problems follow)")
            problems.extend(_located(p) for p in exc.problems)
            continue
        if dcds is not None:
            births[unit] = birth_from_dcds(unit, dcds)
    return births, problems


def resolve(script_path: Path, unit: str, written: str, units_dir: Path | None) -> Path:
    if units_dir is not None:
        for candidate in (units_dir / f"{unit}.yaml", units_dir / unit):
            if candidate.exists():
                return candidate
        return units_dir / written
    return script_path.parent / Path(written).expanduser()


def birth_from_dcds(unit: str, dcds: tuple[Dcd, ...] | list[Dcd]) -> Birth:
    """The `$birth` a unit with these modules publishes, as the unit builds it."""
    modules = {dcd.module: BirthModule.from_dcd(dcd) for dcd in dcds}
    return Birth(unit, software_version(), OFFLINE_BOOT, iso_ts(datetime.fromtimestamp(0, UTC)), modules)


def _read(path: Path, unit: str, report: Callable[[str], None]) -> tuple[Dcd, ...] | None:
    if path.is_dir():
        config = path / "unit.yaml"
        if config.is_file():
            return _unit_config(config, unit, report)
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            report(f"unit {unit}: the folder {path} holds no DCD files (*.yaml) and no unit.yaml")
            return None
        if len(files) > MAX_DCD_FILES:
            report(f"unit {unit}: the folder {path} holds {len(files)} YAML files; a unit has at most "
                   f"{MAX_DCD_FILES} modules")
            return None
        dcds: list[Dcd] = []
        problems: list[ConfigProblem] = []
        for file in files:
            dcd, _, found = read_dcd(file)
            problems += found
            if dcd is not None:
                dcds.append(dcd)
        seen: dict[str, str] = {}
        for dcd in dcds:
            if dcd.module in seen:
                problems.append(ConfigProblem(dcd.source, dcd.line, "module",
                                              f"module {dcd.module!r} is also defined in {seen[dcd.module]}"))
            seen.setdefault(dcd.module, dcd.source)
        if problems:
            raise ConfigError(problems)
        return tuple(dcds)
    if not path.exists():
        report(f"unit {unit}: {path} does not exist; expected a unit config (unit.yaml) or a folder of "
               "DCD files, relative to the script (or give --units DIR)")
        return None
    return _unit_config(path, unit, report)


def _unit_config(path: Path, unit: str, report: Callable[[str], None]) -> tuple[Dcd, ...] | None:
    config = load_unit_config(path, check_ports=False)
    if config.unit != unit:
        report(f"unit {unit}: {path} is the config of unit {config.unit!r}; name it {config.unit} in "
               "the script, or point to a folder of DCD files shared by several units")
        return None
    return config.modules


def _located(problem: ConfigProblem) -> ScriptProblem:
    message = f"{problem.field}: {problem.message}" if problem.field else problem.message
    return ScriptProblem(problem.file, problem.line, None, message)
