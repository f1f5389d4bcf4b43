"""The units a script names, read from their files: each one's Birth and its DCDs (settings included).

The Birth checks commands (as `labedge script check` does); the DCD settings
(`period_s`, `max_on_s`, `ml_per_s`, `max_ml_per_hour`, probe) shape the
simulated modules. Paths resolve as in `hub.script.units`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hub.script.units import capabilities_for, resolve
from lecis.config_loader import load_unit_config
from lecis.dcd import Dcd
from lecis.dcd_loader import load_dcd
from lecis.wire.birth import Birth


def read_units(script_path: Path, units: Mapping[str, str], units_dir: Path | None = None
               ) -> tuple[dict[str, Birth], dict[str, tuple[Dcd, ...]]]:
    """(births, DCDs) of every unit; raises hub.script.errors.ScriptError listing every problem."""
    births = capabilities_for(script_path, units, units_dir)  # every problem at once, checked first
    dcds = {unit: _dcds(resolve(script_path, unit, written, units_dir)) for unit, written in units.items()}
    return births, dcds


def _dcds(path: Path) -> tuple[Dcd, ...]:
    if path.is_dir():
        if (path / "unit.yaml").is_file():
            return load_unit_config(path / "unit.yaml", check_ports=False).modules
        return tuple(load_dcd(p) for p in sorted(path.iterdir())
                     if p.suffix in (".yaml", ".yml") and p.is_file())
    return load_unit_config(path, check_ports=False).modules
