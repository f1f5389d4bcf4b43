"""A PNG of a simulated run: DO with aeration, pH with base dosing, temperature with heater, OUR per cycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.simulate.summary import Summary
from hub.simulate.trace import Trace
from sim.vessel import Vessel


def _hours(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [t / 3600.0 for t, _ in points], [v for _, v in points]


def _shade(ax: Any, trace: Trace, module: str | None, color: str, label: str) -> None:
    if module is None:
        return
    for i, (a, b) in enumerate(trace.on_intervals(module, trace.duration_s)):
        ax.axvspan(a / 3600.0, b / 3600.0, color=color, alpha=0.18, lw=0, label=label if i == 0 else None)


def _reading(trace: Trace, suffix: str) -> str | None:
    return next((name for name in trace.readings if name.endswith(suffix)), None)


def plot_run(path: Path, trace: Trace, summary: Summary, vessel: Vessel,
             outputs: dict[str, str | None]) -> Path:
    """Write the plot to `path`; `outputs` maps a vessel role to the `unit/module` acting on it."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(12, 11), sharex=True, constrained_layout=True)
    do_ax, ph_ax, temp_ax, our_ax = axes
    fig.suptitle(f"{summary.experiment}: simulated {summary.simulated_s / 3600.0:.2f} h")

    if (do := _reading(trace, ".do_mg")) is not None:
        do_ax.plot(*_hours(trace.readings[do]), lw=0.7, color="tab:blue", label=do)
    _shade(do_ax, trace, outputs.get("aeration"), "tab:cyan", "aeration on")
    do_ax.set_ylabel("DO (mg/L)")

    if (ph := _reading(trace, ".ph")) is not None:
        ph_ax.plot(*_hours(trace.readings[ph]), lw=0.7, color="tab:green", label=ph)
    if (base := outputs.get("base")) is not None and (doses := trace.on_intervals(base, trace.duration_s)):
        # A dose lasts seconds: invisible as a span over hours, so each is a mark.
        ph_ax.plot([a / 3600.0 for a, _ in doses], [6.82] * len(doses), "^", color="tab:purple", ms=5,
                   label=f"base pump on ({len(doses)}x)")
    for level in (6.8, 7.2):
        ph_ax.axhline(level, color="grey", lw=0.6, ls="--")
    ph_ax.set_ylabel("pH")

    if (temp := _reading(trace, ".temp")) is not None:
        temp_ax.plot(*_hours(trace.readings[temp]), lw=0.7, color="tab:red", label=temp)
    _shade(temp_ax, trace, outputs.get("heater"), "tab:orange", "heater on")
    if summary.temp_setpoint is not None:
        temp_ax.axhline(summary.temp_setpoint, color="grey", lw=0.6, ls="--")
    temp_ax.set_ylabel("temperature (°C)")

    grid = [i * trace.duration_s / 400 for i in range(401)]
    our_ax.plot([t / 3600.0 for t in grid], [vessel.our(t) for t in grid], color="black", lw=1.0,
                label="model OUR")
    if summary.cycles:
        our_ax.plot([c.on_at_s / 3600.0 for c in summary.cycles], [c.our for c in summary.cycles], "o",
                    color="tab:blue", ms=4, label=f"measured ({summary.our_signal}), one per cycle")
    our_ax.set_ylabel("OUR (mg/L/h)")
    our_ax.set_xlabel("time since start (h)")

    for ax in axes:
        ax.grid(True, lw=0.3)
        ax.legend(loc="best", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
