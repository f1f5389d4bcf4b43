"""Control loops and derived signals: the commands a unit receives."""

from __future__ import annotations

import pytest
from simple_pid import PID

from hub.controller.effects import DerivedEffect
from hub.controller.engine import Engine
from hub.controller.loops import PidState, pid_step
from tests.hub.controller.scripts import T0, Driver, commands, log, onoff, pid, script, signal, task, when


def engine(s: object) -> Engine:
    return Engine(s, run_id="r1", started_at=T0)  # type: ignore[arg-type]


def test_onoff_hysteresis_sends_only_changes_and_respects_min_times() -> None:
    s = script(loops=(onoff("ph", "u1/ph1.ph", "u1/base_pump", 6.8, 7.0, min_on=5, min_off=20),))
    d = Driver(engine(s))
    d.start()
    sent = []
    for t, v in [(1, 6.9), (2, 6.7), (3, 6.6), (4, 7.1), (6, 7.1), (7, 6.9), (10, 6.7), (27, 6.7)]:
        sent.append((t, commands(d.read("u1/ph1.ph", v, t))))
    assert sent == [
        (1, [("u1/base_pump", "off", {})]),  # inside the band at the start: off
        (2, [("u1/base_pump", "on", {})]),
        (3, []), (4, []),  # above 7.0 at 4 s but on for only 2 s of min_on 5
        (6, []),  # min_on ended at 7 s
        (7, [("u1/base_pump", "off", {})]),  # the recheck at 7 s (6.9 holds the decision) turned it off
        (10, []),  # low again but min_off 20 s holds it off until 27 s
        (27, [("u1/base_pump", "on", {})]),
    ]


def test_pid_matches_simple_pid_while_unsaturated() -> None:
    lp = pid("heat", "u1/t1.temp", "u1/heater", "25", kp=0.2, ki=0.01, kd=0.5, out_min=-100, out_max=100)
    oracle = PID(0.2, 0.01, 0.5, setpoint=25, output_limits=(-100, 100))
    st = PidState()
    pv, ts = 20.0, T0
    oracle(pv, dt=1e-12)
    pid_step(lp, st, pv, 25.0, ts)
    for i in range(200):
        ts += 0.5 + (i % 3) * 0.25  # uneven sampling: dt from the readings' timestamps
        pv += 0.03 * ((st.output or 0.0) - 0.1 * (pv - 20.0))
        ours = pid_step(lp, st, pv, 25.0, ts)
        theirs = oracle(pv, dt=0.5 + (i % 3) * 0.25)
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_pid_antiwindup_stops_integrating_while_saturated() -> None:
    lp = pid("heat", "u1/t1.temp", "u1/heater", "25", kp=1.0, ki=0.5, out_min=0, out_max=1)
    st = PidState()
    for i in range(100):  # 100 s far below the setpoint: saturated at 1
        pid_step(lp, st, 15.0, 25.0, T0 + i)
    assert st.output == 1.0
    assert st.integral == 0.0  # saturated from the first sample: never integrated
    # crossing the setpoint, the output falls at once instead of staying on while a windup unwinds
    assert pid_step(lp, st, 25.5, 25.0, T0 + 101) == 0.0


def test_pid_bumpless_start_no_derivative_kick() -> None:
    lp = pid("heat", "u1/t1.temp", "u1/heater", "25", kp=0.1, ki=0.0, kd=100.0, out_min=0, out_max=1)
    st = PidState(output=0.4)
    assert pid_step(lp, st, 24.0, 25.0, T0) == pytest.approx(0.4)  # continues from the last output
    assert pid_step(lp, st, 24.0, 26.0, T0 + 1) == pytest.approx(0.5)  # setpoint step: no kick from D


def test_pid_time_proportioning_sends_one_pulse_per_period() -> None:
    lp = pid("heat", "u1/t1.temp", "u1/heater", "25", kp=0.1, ki=0.0, period_s=10)
    d = Driver(engine(script(loops=(lp,))))
    d.start()
    sent = []
    for t in range(1, 40):
        sent += [(t, c) for c in commands(d.read("u1/t1.temp", 22.0 if t < 25 else 26.0, t))]
    # duty 0.3 while 3 K below: 3 s of every 10; above the setpoint duty 0: no pulse at all
    pulse = ("u1/heater", "pulse", {"seconds": 3.0})
    assert sent == [(10, pulse), (20, pulse)]


def test_pid_speed_mode_sends_on_with_speed() -> None:
    lp = pid("air", "u1/do1.do", "u1/aeration", "6", kp=0.5, ki=0.0)
    d = Driver(engine(script(loops=(lp,))))
    d.start()
    assert commands(d.read("u1/do1.do", 5.0, 1)) == [("u1/aeration", "on", {"speed": 0.5})]
    assert commands(d.read("u1/do1.do", 5.0, 2)) == []  # no change, no command
    assert commands(d.read("u1/do1.do", 7.0, 3)) == [("u1/aeration", "off", {})]


def test_derived_signals_mean_slope_and_use_in_conditions() -> None:
    s = script(task("uptake", when("our > 1.5"), log("high uptake")),
               signals=(signal("our", "slope", "u1/do1.do", 60, scale=-3600),
                        signal("avg", "mean", "u1/do1.do", 60), signal("lo", "min", "u1/do1.do", 60)))
    d = Driver(engine(s))
    d.start()
    for t in range(0, 31):
        d.read("u1/do1.do", 8.0 - 0.0005 * t, t)
    derived = [e for e in d.effects if isinstance(e, DerivedEffect)]
    last = {e.name: e.value for e in derived}
    assert last["our"] == pytest.approx(1.8)  # -0.0005 mg/L/s * -3600 = 1.8 mg/L/h
    assert last["avg"] == pytest.approx(8.0 - 0.0005 * 15)
    assert last["lo"] == pytest.approx(8.0 - 0.0005 * 30)
    assert "uptake" in [e.data["task"] for e in d.effects if getattr(e, "code", "") == "task_fired"]
