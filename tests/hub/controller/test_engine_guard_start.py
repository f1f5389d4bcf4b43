"""At the start of a run a guard waits for its first readings: held, said once as info, no alarm.

The alarm (`guard_hold`) is for a hold that means something: the condition is
true, a reading that had arrived went stale, or a unit went offline.
"""

from __future__ import annotations

from hub.controller.engine import Engine
from tests.hub.controller.plant_rig import PlantRig, example
from tests.hub.controller.scripts import T0, Driver, cmd, every, guard, log, logs, script, task


def alarms(d: Driver) -> list[str]:
    return [f"{e.code}: {e.message}" for e in logs(d.effects, "guard_hold")]


def test_waiting_for_first_readings_is_one_info_then_alarms_only_for_a_real_hold() -> None:
    s = script(task("tick", every(60), log("t")),
               guards=(guard("do_low", "u1/do1.do < 1", cmd("u1/aeration", "on")),
                       guard("probes", "stale(u1/ph1.ph) or u1/t1.temp > 35")), stale_after=30)
    d = Driver(Engine(s, run_id="r1", started_at=T0))  # type: ignore[arg-type]
    d.start()
    assert d.engine.state == "held"  # fail safe: nothing runs until the guards can be evaluated
    waiting = logs(d.effects, "guard_waiting")
    assert [(w.level, w.message) for w in waiting] == [
        ("info", "waiting for first readings of u1/do1.do, u1/ph1.ph, u1/t1.temp "
                 "(guards do_low, probes hold until then)")]
    assert alarms(d) == []
    assert d.engine.status(T0)["holding"][0] == {
        "guard": "do_low", "reason": "waiting for first readings of u1/do1.do"}
    d.read("u1/do1.do", 5.0, 1)
    d.read("u1/ph1.ph", 7.0, 2)
    assert d.engine.state == "held" and alarms(d) == []  # probes still waits for its temperature
    d.read("u1/t1.temp", 25.0, 3)
    assert d.engine.state == "running" and alarms(d) == []
    assert len(logs(d.effects, "guard_waiting")) == 1  # once
    d.to(40)  # u1/do1.do, seen at 1 s, is stale from 31 s: now the hold is an alarm
    assert alarms(d) == ["guard_hold: held by guard do_low: cannot evaluate 'u1/do1.do < 1': "
                         "u1/do1.do is stale: last value 30.0 s old (stale_after 30 s)",
                         "guard_hold: held by guard probes: stale(u1/ph1.ph) or u1/t1.temp > 35 is true"]


def test_a_guard_still_waiting_alarms_when_its_unit_goes_offline() -> None:
    s = script(guards=(guard("do_low", "u1/do1.do < 1"),))
    d = Driver(Engine(s, run_id="r1", started_at=T0))  # type: ignore[arg-type]
    d.start()
    assert alarms(d) == []
    d.feed(d.engine.on_unit_online("u1", False, T0 + 5))
    assert alarms(d) == ["guard_hold: held by guard do_low: unit u1 offline"]


def test_a_guard_waiting_whose_condition_turns_true_alarms() -> None:
    s = script(guards=(guard("hot", "u1/t1.temp > 35 or u1/t2.temp > 35"),))
    d = Driver(Engine(s, run_id="r1", started_at=T0))  # type: ignore[arg-type]
    d.start()
    d.read("u1/t1.temp", 40.0, 1)
    d.read("u1/t2.temp", 20.0, 2)
    assert alarms(d) == ["guard_hold: held by guard hot: u1/t1.temp > 35 or u1/t2.temp > 35 is true"]


def test_the_example_script_starts_without_an_alarm() -> None:
    rig = PlantRig("", script=example())
    rig.start()
    rig.until(120)
    assert rig.engine.state == "running"
    assert rig.alarms() == []
    assert [e.message for _, e in rig.logs if e.code == "guard_waiting"] == [
        "waiting for first readings of bench-1/ph1.ph, bench-1/temp1.temp "
        "(guards ph_probe, temp_probe hold until then)"]


def test_a_guard_waiting_for_one_reading_alarms_when_another_it_had_goes_stale() -> None:
    s = script(guards=(guard("do_low", "u1/do1.do < 1 or u1/do2.do < 1"),), stale_after=30)
    d = Driver(Engine(s, run_id="r1", started_at=T0))  # type: ignore[arg-type]
    d.start()
    d.read("u1/do1.do", 5.0, 1)
    d.to(31)
    assert alarms(d) == []  # u1/do2.do never came: warned as stale, still waited for
    assert [w.data["name"] for w in logs(d.effects, "stale_reading")] == ["u1/do2.do"]
    d.to(32)  # u1/do1.do, seen at 1 s, is stale now
    assert [a.split(":")[0] for a in alarms(d)] == ["guard_hold"]
