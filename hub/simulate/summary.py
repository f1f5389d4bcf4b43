"""A simulated run's figures: pH band, temperature band after warm-up, OUR per aeration cycle vs the model.

An aeration cycle is an off-stretch of the aeration output between two
on-stretches. Its OUR is the script's slope signal on the DO reading at the
moment aeration came back on (what the script reports), beside the model's
mean OUR over that signal's window.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import Any

from hub.script.model import PidLoop, Script, Signal
from hub.simulate.trace import Trace
from sim.vessel import Vessel

PH_AFTER_S = 900.0  # the first 15 minutes bring the sludge's pH into the band


@dataclass(frozen=True)
class Cycle:
    number: int
    off_at_s: float
    on_at_s: float
    our: float  # mg/L/h, the script's signal
    model: float  # mg/L/h, the vessel's mean over the signal's window

    @property
    def error(self) -> float:
        return (self.our - self.model) / self.model if self.model else float("inf")


@dataclass
class Summary:
    experiment: str
    simulated_s: float
    wall_s: float
    final_state: str
    ph: tuple[float, float] | None = None
    ph_source: str | None = None
    temp: tuple[float, float] | None = None
    temp_source: str | None = None
    temp_setpoint: float | None = None
    warmed_at_s: float | None = None
    our_signal: str | None = None
    cycles: list[Cycle] = field(default_factory=list)
    base_ml: float = 0.0
    heater_kj: float = 0.0
    refused: list[str] = field(default_factory=list)
    not_simulated: list[str] = field(default_factory=list)

    def worst_error(self) -> float | None:
        return max((abs(c.error) for c in self.cycles), default=None)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["cycles"] = [{**asdict(c), "error": c.error} for c in self.cycles]
        out["worst_our_error"] = self.worst_error()
        return out

    def lines(self) -> list[str]:
        speed = self.simulated_s / self.wall_s if self.wall_s > 0 else float("inf")
        out = [f"{self.experiment}: {_hms(self.simulated_s)} simulated in {self.wall_s:.1f} s "
               f"(x{speed:.0f}), ended {self.final_state}"]
        if self.ph is not None:
            out.append(f"  pH after the first 15 min ({self.ph_source}): "
                       f"{self.ph[0]:.2f} .. {self.ph[1]:.2f}")
        if self.temp is not None and self.warmed_at_s is not None:
            out.append(f"  temperature after warm-up ({self.temp_source} reached {self.temp_setpoint:g} °C "
                       f"at {_hms(self.warmed_at_s)}): {self.temp[0]:.2f} .. {self.temp[1]:.2f} °C")
        elif self.temp_source is not None:
            out.append(f"  temperature ({self.temp_source}) never reached its setpoint "
                       f"{self.temp_setpoint:g} °C")
        if self.cycles:
            worst = self.worst_error() or 0.0
            mean = sum(c.error for c in self.cycles) / len(self.cycles)
            out.append(f"  OUR ({self.our_signal}) in {len(self.cycles)} aeration cycles, vs the model: "
                       f"mean error {mean:+.2%}, worst {worst:.2%}")
            out.append("    cycle  aeration off .. on    OUR mg/L/h  model  error")
            for c in self.cycles:
                out.append(f"    {c.number:5d}  {_hms(c.off_at_s):>8} .. {_hms(c.on_at_s):<8}  "
                           f"{c.our:10.2f}  {c.model:5.2f}  {c.error:+.2%}")
        elif self.our_signal is not None:
            out.append(f"  no complete aeration cycle: no OUR from {self.our_signal}")
        out.append(f"  base dosed {self.base_ml:.1f} ml; heater energy {self.heater_kj:.0f} kJ")
        out.extend(f"  refused: {r}" for r in self.refused[:10])
        if self.not_simulated:
            out.append(f"  not simulated (no vessel probe or role): {', '.join(self.not_simulated)}")
        return out


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


def _range(points: list[tuple[float, float]], after: float) -> tuple[float, float] | None:
    values = [v for t, v in points if t >= after]
    return (min(values), max(values)) if values else None


def _constant(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def our_signal(script: Script) -> Signal | None:
    """The script's slope signal on a DO reading (the uptake rate), if it has one."""
    return next((s for s in script.signals if s.kind == "slope" and s.source.endswith(".do_mg")), None)


def summarize(script: Script, trace: Trace, vessel: Vessel, aeration: str | None, wall_s: float) -> Summary:
    """The figures of one run; `aeration` is `unit/module` of the output driving the vessel's aeration."""
    summary = Summary(script.experiment, trace.duration_s, wall_s, trace.final_state)
    ph = next((name for name in trace.readings if name.endswith(".ph")), None)
    if ph is not None:
        summary.ph, summary.ph_source = _range(trace.readings[ph], PH_AFTER_S), ph
    pid = next((lp for lp in script.loops if isinstance(lp, PidLoop) and lp.input in trace.readings), None)
    if pid is not None and (setpoint := _constant(pid.setpoint.text)) is not None:
        summary.temp_source, summary.temp_setpoint = pid.input, setpoint
        points = trace.readings[pid.input]
        # Warmed up once the reading first reaches the setpoint (from below or, cooling, from above).
        below = bool(points) and points[0][1] < setpoint
        warmed = next((t for t, v in points if (v >= setpoint if below else v <= setpoint)), None)
        summary.warmed_at_s = warmed
        if warmed is not None:
            summary.temp = _range(points, warmed)
    signal = our_signal(script)
    if signal is not None and aeration is not None:
        summary.our_signal = signal.name
        values = trace.signals.get(signal.name, [])
        times = [t for t, _ in values]
        for off, on in trace.off_intervals(aeration, trace.duration_s):
            i = bisect.bisect_right(times, on) - 1
            if i < 0 or times[i] < off:
                continue
            model = vessel.mean_our(max(off, times[i] - signal.window_s), times[i])
            summary.cycles.append(Cycle(len(summary.cycles) + 1, off, on, values[i][1], model))
    summary.base_ml = vessel.state.base_ml
    summary.heater_kj = vessel.state.heat_j / 1000.0
    summary.refused = [f"{_hms(t)} {module} {cmd}: {status}" for t, module, cmd, status in trace.commands
                       if status != "done"]
    return summary
