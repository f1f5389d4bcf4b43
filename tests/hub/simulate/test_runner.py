"""The discrete-event runner: the engine's timers on simulated time, the unit's refusals, wall-time pacing."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.script.loader import parse_script
from hub.script.model import Script
from hub.simulate.runner import Simulation, SimulationSettings
from hub.simulate.units import read_units
from lecis.dcd import Dcd
from lecis.wire.birth import Birth

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
HEAD = "experiment: t\nunits: {bench-1: unit.yaml}\n"
AERATE = "tasks:\n  - {name: a, at: 0s, do: [{bench-1/aeration: on}]}\n"
Units = tuple[dict[str, Birth], dict[str, tuple[Dcd, ...]]]


@pytest.fixture(scope="module")
def units() -> Units:
    return read_units(EXAMPLES / "respirometry.yaml", {"bench-1": "unit.yaml"})


def script(text: str, units: Units) -> Script:
    return parse_script(HEAD + text, str(EXAMPLES / "t.yaml"), units[0])


def simulation(text: str, units: Units, duration: float,
               speed: float = 0.0, **kwargs: object) -> Simulation:
    settings = SimulationSettings(duration, speed)
    return Simulation(script(text, units), *units, settings, **kwargs)  # type: ignore[arg-type]


async def test_timed_tasks_fire_at_their_simulated_time(units: Units) -> None:
    sim = simulation("tasks:\n  - {name: a, at: 90s, do: [{log: hello}]}\n"
                     "  - {name: b, every: 10m, do: [{bench-1/aeration: on}, {wait: 1m}, "
                     "{bench-1/aeration: off}]}\n",
                     units, 1700.0)
    trace = await sim.run()
    assert [t for t, _, code, message in trace.logs if message == "hello"] == [90.0]
    assert trace.on_intervals("bench-1/aeration", trace.duration_s) == [
        (0.0, 60.0), (600.0, 660.0), (1200.0, 1260.0)]
    assert trace.final_state == "stopped"
    assert max(t for t, _ in trace.readings["bench-1/ph1.ph"]) == 1700.0 - 0.75  # ph1 reads at k + 0.25 s


async def test_a_command_the_unit_refuses_follows_on_error(units: Units) -> None:
    # 200 ml at 0.85 ml/s is longer than the pump's max_on_s: the unit refuses it, the script stops.
    sim = simulation("on_error: stop\ntasks:\n"
                     "  - {name: a, at: 10s, do: [{bench-1/base_pump: {dose: {ml: 200}}}]}\n"
                     "  - {name: b, at: 20s, do: [{log: never}]}\n", units, 600.0)
    trace = await sim.run()
    assert trace.commands[0][1:] == ("bench-1/base_pump", "dose", "rejected")
    assert trace.final_state == "stopped" and trace.duration_s == 10.0
    assert not [m for _, _, _, m in trace.logs if m == "never"]
    assert sim.vessel.state.base_ml == 0.0


async def test_a_pulse_running_at_the_end_is_aborted_by_the_stop(units: Units) -> None:
    sim = simulation("tasks:\n  - {name: a, at: 50s, do: [{bench-1/heater: {pulse: {seconds: 100}}}]}\n",
                     units, 100.0)
    trace = await sim.run()
    assert trace.on_intervals("bench-1/heater", trace.duration_s) == [(50.0, 100.0)]
    assert sim.vessel.state.heat_j == pytest.approx(200.0 * 50.0)
    assert ("bench-1/heater", "ABORT", "done") in [c[1:] for c in trace.commands]


class FakeWall:
    """Wall time that moves only when the runner sleeps (or by `lag` at every look)."""

    def __init__(self, lag: float = 0.0) -> None:
        self.now, self.lag, self.slept = 0.0, lag, 0.0

    def __call__(self) -> float:
        self.now += self.lag
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


async def test_speed_paces_simulated_seconds_per_wall_second(units: Units) -> None:
    wall = FakeWall()
    sim = simulation(AERATE, units, 600.0, speed=100.0, wall=wall, sleep=wall.sleep)
    await sim.run()
    assert wall.slept == pytest.approx(6.0, abs=0.02)


async def test_behind_the_pace_it_never_sleeps(units: Units) -> None:
    wall = FakeWall(lag=1.0)  # every step costs a wall second: far behind x100
    sim = simulation(AERATE, units, 300.0, speed=100.0, wall=wall, sleep=wall.sleep)
    trace = await sim.run()
    assert wall.slept == 0.0 and trace.duration_s == 300.0
