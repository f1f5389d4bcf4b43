"""What a simulated run keeps in memory for its plot and summary (the files hold everything else)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Trace:
    """Series in seconds since the start: readings, outputs, derived signals, the model's OUR, logs."""

    readings: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    outputs: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    signals: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    logs: list[tuple[float, str, str, str]] = field(default_factory=list)  # (t, level, code, message)
    commands: list[tuple[float, str, str, str]] = field(default_factory=list)  # (t, module, cmd, status)
    unit_events: list[tuple[float, str, str, str]] = field(default_factory=list)  # (t, module, code, msg)
    duration_s: float = 0.0
    final_state: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def output_level(self, module: str, outputs: dict[str, Any]) -> float:
        """An output's level for plotting: speed when it has one and is on, else 1/0."""
        on = bool(outputs.get("on"))
        speed = outputs.get("speed")
        return float(speed) if on and isinstance(speed, int | float) and speed > 0 else float(on)

    def on_intervals(self, module: str, end: float) -> list[tuple[float, float]]:
        """(start, end) of every stretch `module` ("unit/module") was on."""
        spans: list[tuple[float, float]] = []
        since: float | None = None
        for t, level in self.outputs.get(module, []):
            if level > 0 and since is None:
                since = t
            elif level <= 0 and since is not None:
                spans.append((since, t))
                since = None
        if since is not None:
            spans.append((since, end))
        return spans

    def off_intervals(self, module: str, end: float) -> list[tuple[float, float]]:
        """(start, end) of every time `module` was off between two on-stretches (complete cycles only)."""
        spans = self.on_intervals(module, end)
        return [(a[1], b[0]) for a, b in itertools.pairwise(spans)]
