"""The scripts in docs/scripts.md are valid scripts, checked as a user would check them."""

from __future__ import annotations

import re
from pathlib import Path

from hub.script.loader import parse_script
from hub.script.model import After, Every, SessionAction, While
from hub.script.units import capabilities_for
from lecis.yaml_loader import parse_yaml

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "scripts.md"


def test_worked_example_2_is_valid() -> None:
    text = DOC.read_text(encoding="utf-8").split("## Worked example 2", 1)[1]
    script_text = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    units = parse_yaml(script_text, "doc").data["units"]
    births = capabilities_for(DOC, units)  # paths relative to docs/, as written
    script = parse_script(script_text, "docs/scripts.md", births)
    triggers = {t.name: t.trigger for t in script.tasks}
    assert isinstance(triggers["dose"], Every) and triggers["dose"].until is not None
    assert triggers["dose"].start == 1800 and triggers["dose"].period == 7200
    assert isinstance(triggers["check_after_dose"], After) and triggers["check_after_dose"].delay == 1800
    assert isinstance(triggers["turbid"], While) and triggers["turbid"].on_exit
    sessions = [a for t in script.tasks for a in t.actions if isinstance(a, SessionAction)]
    assert [(s.action, s.unit) for s in sessions] == [("start", "bench-1"), ("start", "bench-2"),
                                                      ("stop", "bench-1"), ("stop", "bench-2")]


def test_every_top_level_key_is_documented() -> None:
    from hub.script.loader import TOP_KEYS

    doc = DOC.read_text(encoding="utf-8")
    for key in TOP_KEYS:
        assert f"| `{key}` |" in doc
