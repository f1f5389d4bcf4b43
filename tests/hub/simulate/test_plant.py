"""The simulated plant: instruments at their DCD period, increasing seq; equipment with the unit's rules."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from hub.controller.effects import Outcome, Plant, Reading
from hub.script.units import birth_from_dcds
from hub.simulate.clock import SimClock
from hub.simulate.events import Agenda
from hub.simulate.plant import SimulatedPlant
from lecis.dcd_loader import load_dcd, parse_dcd
from sim.vessel import Vessel, VesselParams

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "dcd"
UNIT = "bench-1"


class Heard:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.states: list[tuple[str, dict[str, Any]]] = []
        self.events: list[tuple[str, int, str, str]] = []

    def reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def state(self, unit: str, module: str, outputs: dict[str, Any], lecis: str) -> None:
        self.states.append((module, outputs))

    def event(self, unit: str, module: str, seq: int, level: str, code: str, message: str) -> None:
        self.events.append((module, seq, code, message))


class Rig:
    def __init__(self) -> None:
        dcds = tuple(load_dcd(EXAMPLES / f"{m}.yaml") for m in ("ph1", "do1", "temp1", "turbidity1",
                                                                  "aeration", "base_pump", "heater"))
        self.clock, self.agenda, self.heard = SimClock(), Agenda(), Heard()
        self.vessel = Vessel(self.clock, VesselParams())
        births = {UNIT: birth_from_dcds(UNIT, dcds)}
        self.plant = SimulatedPlant(births, {UNIT: dcds}, self.vessel, self.clock, self.agenda, self.heard)
        self.plant.start()

    def until(self, t: float) -> None:
        while (item := self.agenda.pop_due(t)) is not None:
            self.clock.set_elapsed(max(self.clock.elapsed, item.at))
            if not item.cancelled:
                item.action()
        self.clock.set_elapsed(t)

    def send(self, module: str | None, cmd: str, args: dict[str, Any] | None = None) -> list[Outcome]:
        got: list[Outcome] = []
        self.plant.submit(UNIT, module, cmd, args or {}, got.append)
        return got


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_instruments_read_the_vessel_at_their_period_with_increasing_seq(rig: Rig) -> None:
    rig.until(20.0)
    by = {m: [r for r in rig.heard.readings if r.module == m] for m in ("ph1", "do1", "temp1")}
    assert len(by["ph1"]) == 20 and len(by["temp1"]) == 20 and len(by["do1"]) == 10  # period_s 1, 1, 2
    for readings in by.values():
        assert [r.seq for r in readings] == list(range(1, len(readings) + 1))
        assert all(b.ts > a.ts for a, b in itertools.pairwise(readings))
    assert set(by["do1"][0].values) == {"do_mg", "do_sat"}
    assert set(by["temp1"][0].values) == {"temp"}
    assert by["temp1"][0].values["temp"] == pytest.approx(20, abs=0.1)
    assert by["ph1"][0].values["ph"] == pytest.approx(VesselParams().ph, abs=0.02)
    assert not [r for r in rig.heard.readings if r.module == "turbidity1"]  # no vessel probe: not simulated
    assert rig.plant.simulated() == ["bench-1/ph1", "bench-1/do1", "bench-1/temp1", "bench-1/aeration",
                                     "bench-1/base_pump", "bench-1/heater"]
    assert rig.plant.not_simulated() == ["bench-1/turbidity1"]


def test_aeration_on_and_off_act_on_the_vessel_and_publish_state(rig: Rig) -> None:
    assert rig.send("aeration", "on") == [Outcome("done", result={"on": True})]
    assert rig.vessel.state.outputs["aeration"].on
    assert rig.heard.states[-1] == ("aeration", {"on": True})
    rig.until(600.0)
    assert rig.vessel.state.do_mg_l > 4.0
    assert rig.send("aeration", "off")[0].ok and not rig.vessel.state.outputs["aeration"].on


def test_pulse_answers_when_it_ends_and_the_module_is_busy_meanwhile(rig: Rig) -> None:
    got = rig.send("heater", "pulse", {"seconds": 30})
    assert got == [] and rig.vessel.heater_w() == 200.0
    off = rig.send("heater", "off")
    assert off[0].status == "rejected" and off[0].error is not None
    assert off[0].error["kind"] == "state" and "BUSY" in off[0].error["message"]
    rig.until(29.9)
    assert got == []
    rig.until(30.1)
    assert got == [Outcome("done", result={"ran_s": 30.0})] and rig.vessel.heater_w() == 0.0


def test_heater_is_cut_at_max_on_s_and_refused_until_it_rested_min_off_s(rig: Rig) -> None:
    assert rig.send("heater", "on")[0].ok
    rig.until(1000.0)
    assert not rig.vessel.state.outputs["heater"].on
    assert [(m, code) for m, _, code, _ in rig.heard.events] == [("heater", "max_on")]
    assert rig.heard.events[0][3] == "heater turned off after max_on_s=900 s"
    assert rig.send("heater", "on")[0].ok  # 100 s off: more than min_off_s, a fresh stretch
    rig.send("heater", "off")
    # Pulses with off gaps under min_off_s (60 s) make one stretch: its 900 s run out across them.
    rig.until(2000.0)
    got: list[Outcome] = []
    for i in range(24):
        rig.plant.submit(UNIT, "heater", "pulse", {"seconds": 40}, got.append)
        rig.until(2000.0 + (i + 1) * 70.0)
    assert [o.result for o in got[:22]] == [{"ran_s": 40.0}] * 22
    assert got[22].result == {"ran_s": 20.0, "limited_by": "max_on_s"}
    assert got[23].status == "rejected" and got[23].error == {
        "kind": "state", "param": None,
        "message": "heater has been on for max_on_s=900 s in this stretch; it must stay off 10 s more "
                   "(min_off_s=60) before it can be switched on again"}


def test_base_dose_follows_the_pump_calibration_and_the_hourly_cap(rig: Rig) -> None:
    ph = rig.vessel.state.ph
    got = rig.send("base_pump", "dose", {"ml": 8.5})
    rig.until(10.0 - 1e-6)
    assert got == []
    rig.until(10.1)
    assert got == [Outcome("done", result={"ml": 8.5, "ran_s": 10.0})]
    assert rig.vessel.state.base_ml == pytest.approx(8.5)
    assert rig.vessel.state.ph > ph + 0.1
    too_long = rig.send("base_pump", "dose", {"ml": 110})
    assert too_long[0].status == "rejected" and too_long[0].error == {
        "kind": "validation", "param": "ml",
        "message": "dose of 110 ml takes 129.412 s at 0.85 ml/s, longer than max_on_s=120; dose less at a "
                   "time or at a higher speed"}
    t = 20.0
    for _ in range(4):
        rig.send("base_pump", "dose", {"ml": 10})
        t += 15.0
        rig.until(t)
    over = rig.send("base_pump", "dose", {"ml": 5})
    assert over[0].status == "rejected" and over[0].error is not None and over[0].error["param"] == "ml"
    assert over[0].error["message"] == ("dose of 5 ml would make 53.5 ml in the last hour; "
                                        "max_ml_per_hour is 50")
    # `on` is cut when the hour's volume is pumped, with the unit's event.
    assert rig.send("base_pump", "on")[0].ok
    rig.until(t + 10.0)
    assert not rig.vessel.state.outputs["base"].on
    assert rig.heard.events[-1][2] == "max_ml_per_hour"
    assert rig.vessel.state.base_ml == pytest.approx(50.0, abs=1e-6)
    assert rig.send("base_pump", "on")[0].status == "rejected"
    rig.until(3700.0)  # the first dose left the hour
    assert rig.send("base_pump", "dose", {"ml": 5}) == []  # accepted: answers when pumped
    rig.until(3710.0)
    assert rig.vessel.state.base_ml == pytest.approx(55.0, abs=1e-6)


def test_unknown_commands_and_bad_arguments_are_refused_as_the_unit_does(rig: Rig) -> None:
    unknown = rig.send("heater", "dose", {"ml": 1})[0]
    assert unknown.status == "rejected" and unknown.error is not None
    assert unknown.error["kind"] == "unknown_command"
    assert "heater has no command 'dose'" in unknown.error["message"]
    bad = rig.send("heater", "pulse", {"seconds": -1})[0]
    assert bad.status == "rejected" and bad.error is not None and bad.error["param"] == "seconds"
    speed = rig.send("base_pump", "on", {"speed": 0.5})[0]
    assert speed.status == "rejected" and speed.error is not None and speed.error["kind"] == "validation"
    nobody = rig.send("ph1", "nonsense")[0]
    assert nobody.status == "rejected"
    assert rig.send("do1", "salinity_ppt", {"ppt": 1})[0].ok  # an instrument's own command


def test_estop_of_the_unit_turns_everything_off_until_clear(rig: Rig) -> None:
    rig.send("aeration", "on")
    rig.send("heater", "pulse", {"seconds": 100})
    assert rig.send(None, "ESTOP")[0].ok
    assert not rig.vessel.state.outputs["aeration"].on and rig.vessel.heater_w() == 0.0
    refused = rig.send("aeration", "on")[0]
    assert refused.status == "rejected" and refused.error is not None
    assert "ESTOPPED" in refused.error["message"]
    rig.send(None, "CLEAR")
    assert rig.send("aeration", "on")[0].ok


async def test_the_plant_protocol_answers_through_command(rig: Rig) -> None:
    plant: Plant = rig.plant  # what the controller's runner drives, checked by mypy
    outcome = await plant.command(UNIT, "aeration", "on", {}, command_id="c-1")
    assert outcome == Outcome("done", result={"on": True})


def test_a_pwm_air_pump_at_a_speed_aerates_in_proportion() -> None:
    dcd = parse_dcd("module: air_pump\ndriver: gpio.pump\npin: 18\nmax_on_s: 43200\npwm: true\n")
    clock, agenda, heard = SimClock(), Agenda(), Heard()
    vessel = Vessel(clock, VesselParams())
    plant = SimulatedPlant({UNIT: birth_from_dcds(UNIT, [dcd])}, {UNIT: (dcd,)}, vessel, clock, agenda, heard,
                           roles={"air_pump": "aeration"})
    got: list[Outcome] = []
    plant.submit(UNIT, "air_pump", "on", {"speed": 0.5}, got.append)
    assert got == [Outcome("done", result={"on": True})]
    assert vessel.kla_per_h() == pytest.approx(VesselParams().kla_per_h / 2)
    assert heard.states[-1] == ("air_pump", {"on": True, "speed": 0.5})
    plant.submit(UNIT, "air_pump", "on", {"speed": 0.0}, got.append)
    assert vessel.kla_per_h() == 0.0 and heard.states[-1] == ("air_pump", {"on": False, "speed": 0.0})
