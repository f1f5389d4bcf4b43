"""A new script version compared with the running one, item by item, keyed by name.

Positions do not count (a task moved down by an edit above it is unchanged);
expressions compare by their text.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.script.model import Script


@dataclass(frozen=True)
class ScriptDiff:
    """Names are `kind:name` (`task:aerate`, `loop:ph`, `signal:our`, `guard:do_probe`, `variable:cycles`)."""

    version: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    text: str  # unified diff of the YAML

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "added": list(self.added), "removed": list(self.removed),
                "changed": list(self.changed), "text": self.text}


def key(value: Any) -> Any:
    """A comparable form of a script item without positions; expressions by text."""
    if hasattr(value, "evaluate") and hasattr(value, "text"):
        return ("expr", value.text)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,) + tuple(
            (f.name, key(getattr(value, f.name))) for f in dataclasses.fields(value) if f.name != "position")
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), key(v)) for k, v in value.items()))
    if isinstance(value, tuple | list):
        return tuple(key(v) for v in value)
    return value


def items(script: Script) -> dict[str, Any]:
    """Every named item of a script, `kind:name` -> comparable key."""
    out: dict[str, Any] = {}
    for t in script.tasks:
        out[f"task:{t.name}"] = key(t)
    for lp in script.loops:
        out[f"loop:{lp.name}"] = key(lp)
    for s in script.signals:
        out[f"signal:{s.name}"] = key(s)
    for g in script.guards:
        out[f"guard:{g.name}"] = key(g)
    for name, value in script.variables.items():
        out[f"variable:{name}"] = key(value)
    # settings of the whole script count as one item
    out["script:settings"] = key((script.duration_s, script.stale_after_s, script.on_error))
    return out


def compare(old: Script, new: Script, version: int) -> ScriptDiff:
    a, b = items(old), items(new)
    text = "".join(difflib.unified_diff(
        old.text.splitlines(keepends=True), new.text.splitlines(keepends=True),
        fromfile=f"{old.source} (running)", tofile=f"{new.source} (v{version})"))
    return ScriptDiff(
        version=version,
        added=tuple(sorted(set(b) - set(a))),
        removed=tuple(sorted(set(a) - set(b))),
        changed=tuple(sorted(n for n in set(a) & set(b) if a[n] != b[n])),
        text=text,
    )
