"""A unit config naming its unit `hub` is refused: lab/hub/... is the hub's own (readings would be lost)."""

from __future__ import annotations

from pathlib import Path

from tests.lecis.test_config_loader import problems_of, unit_text, write_unit


def test_unit_id_hub_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = write_unit(tmp_path, unit_text().replace("unit: bench-2", "unit: hub") + "  []\n", {})
    problems = [p for p in problems_of(path) if p[2] == "unit"]
    assert problems == [("unit.yaml", 1, "unit", "unit id 'hub' is reserved: hub/... topics are the hub's "
                         "own, and the hub ignores units' messages there; choose another id, e.g. bench-1")]
