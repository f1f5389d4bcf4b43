"""Hot edit and resume after a restart: kept timers, kept integrators, nothing fired twice."""

from __future__ import annotations

import json

import pytest

from hub.controller.effects import CommandEffect, Outcome
from hub.controller.engine import Engine
from hub.controller.snapshot import SnapshotInvalid
from tests.hub.controller.scripts import (
    T0,
    Driver,
    at,
    cmd,
    commands,
    edit,
    every,
    fired,
    log,
    logs,
    onoff,
    pid,
    script,
    task,
    wait,
    when,
)


def engine(s: object, snap: dict[str, object] | None = None) -> Engine:
    return Engine(s, run_id="r1", started_at=T0, snapshot=snap)  # type: ignore[arg-type]


HEAT = pid("heat", "u1/t1.temp", "u1/heater", "25", kp=0.05, ki=0.002, period_s=0)


def test_hot_edit_keeps_the_pid_integrator_and_a_tasks_timer() -> None:
    base = script(task("sample", every(600), log("s")), task("once", at(5000), log("o")), loops=(HEAT,),
                  text="v1\n")
    d = Driver(engine(base))
    d.start()
    for t in range(1, 300):
        d.read("u1/t1.temp", 24.0, t)
    integral = d.engine.pid["heat"].integral
    assert integral > 0
    new = edit(base, tasks=(task("sample", every(600), log("s")), task("once", at(5000), log("o")),
                            task("extra", at(700), log("e"))),
               loops=(pid("heat", "u1/t1.temp", "u1/heater", "26", kp=0.05, ki=0.002),), text="v2\n")
    eff, diff = d.engine.apply(new, T0 + 300, "ana")
    d.feed(eff)
    assert diff.added == ("task:extra",) and diff.changed == ("loop:heat",) and diff.removed == ()
    assert "-v1" in diff.text and "+v2" in diff.text
    assert d.engine.version == 2
    assert d.engine.pid["heat"].integral == integral  # kept: the new setpoint takes over bumplessly
    assert d.engine.tasks["sample"].dues == [T0 + 600]  # kept timer
    d.to(1300)
    assert fired(d.effects) == ["sample", "sample", "extra", "sample"]


def test_hot_edit_takes_effect_at_once_and_a_changed_task_ends_after_its_command() -> None:
    base = script(task("go", at(0), cmd("u1/base_pump", "dose", ml=5), cmd("u1/aeration", "on")),
                  task("tick", every(60), log("t")),
                  loops=(onoff("ph", "u1/ph1.ph", "u1/base_pump", 6.8, 7.0),))
    e = engine(base)
    dose = next(c for c in e.start(T0) if isinstance(c, CommandEffect))  # a long dose in flight
    new = edit(base, tasks=(task("go", at(0), cmd("u1/heater", "on")), base.tasks[1]), loops=())
    eff, diff = e.apply(new, T0 + 1, "ana")
    assert diff.removed == ("loop:ph",) and diff.changed == ("task:go",)
    assert e.version == 2 and logs(eff, "script_applied")  # at once, not after the dose
    # the removed loop's output: the unit would refuse `off` during the task's dose, which ends with it off
    assert commands(eff) == []
    after = e.on_outcome(dose.effect_id, Outcome("done"), T0 + 120)
    assert commands(after) == []  # the changed task's old sequence ended with its dose
    assert e.runs == {}


def test_snapshot_and_a_new_engine_give_the_same_future() -> None:
    s = script(task("once", at(100), cmd("u1/aeration", "on")), task("tick", every(60), log("t")),
               task("hot", when("u1/t1.temp > 30", for_s=100), log("hot")), loops=(HEAT,))
    a = Driver(engine(s))
    a.start()
    for t in range(1, 120, 3):
        a.read("u1/t1.temp", 24.0 + t / 10, t)
    snap = json.loads(json.dumps(a.engine.snapshot()))
    mark = len(a.effects)
    b = Driver(engine(s, snap))
    b.now = a.now
    b.feed(b.engine.resume(b.now))
    resumed = len(b.effects)
    for d in (a, b):
        for t in range(121, 400, 3):
            d.read("u1/t1.temp", 24.0 + t / 10 if t < 200 else 20.0, t)
    assert fired(a.effects[mark:]) == fired(b.effects[resumed:])
    # the `for` of `hot` was pending at the snapshot (118 s): it fires at 160 s in both
    assert fired(a.effects[mark:]) == ["tick", "hot", "tick", "tick", "tick", "tick"]
    ca, cb = commands(a.effects[mark:]), commands(b.effects[resumed:])
    assert [c[:2] for c in ca] == [c[:2] for c in cb]
    # the resumed loop skips one integration step (dt must not span a restart's gap)
    assert [c[2].get("speed") for c in cb] == pytest.approx([c[2].get("speed") for c in ca], abs=0.01)
    assert b.engine.pid["heat"].integral == pytest.approx(a.engine.pid["heat"].integral)


def test_resume_after_downtime_fires_a_missed_every_once_and_no_at_twice() -> None:
    s = script(task("once", at(10), cmd("u1/aeration", "on")), task("tick", every(60), log("t")))
    a = Driver(engine(s))
    a.start()
    a.to(100)
    assert fired(a.effects) == ["tick", "once", "tick"]
    snap = json.loads(json.dumps(a.engine.snapshot()))
    # the hub is down from 100 s to 1000 s: `tick` fell due 15 times
    b = Driver(engine(s, snap))
    b.now = T0 + 1000
    out = b.feed(b.engine.resume(b.now))
    assert fired(out) == ["tick"]
    assert ("u1/aeration", "on", {}) in commands(out)  # wanted output re-applied, `once` not fired again
    b.to(1100)
    assert fired(b.effects) == ["tick"] * 3  # then on its grid again: 1020, 1080
    assert b.engine.tasks["tick"].dues == [T0 + 1140]


def test_resume_mid_sequence_resends_the_command_in_flight_with_the_same_id() -> None:
    s = script(task("seq", at(0), cmd("u1/aeration", "on"), wait(30), cmd("u1/aeration", "off"),
                    cmd("u1/heater", "on")))
    e = engine(s)
    on = next(c for c in e.start(T0) if isinstance(c, CommandEffect))
    e.on_outcome(on.effect_id, Outcome("done"), T0 + 1)
    off = next(c for c in e.advance(T0 + 31) if isinstance(c, CommandEffect))
    snap = json.loads(json.dumps(e.snapshot()))  # crash: `off` sent, no outcome recorded
    e2 = engine(s, snap)
    again = [c for c in e2.resume(T0 + 100) if isinstance(c, CommandEffect)]
    assert next((c.effect_id, c.cmd) for c in again if c.module == "aeration") == (off.effect_id, "off")
    nxt = e2.on_outcome(off.effect_id, Outcome("done"), T0 + 101)
    assert commands(nxt) == [("u1/heater", "on", {})]  # the sequence carries on after it
    assert fired(nxt) == []


def test_a_broken_snapshot_is_refused_with_the_field_named() -> None:
    s = script(task("tick", every(60), log("t")))
    e = engine(s)
    e.start(T0)
    snap = e.snapshot()
    snap["tasks"] = {"tick": {"fired": 1, "bogus": 2}}
    with pytest.raises(SnapshotInvalid, match="'tasks'"):
        engine(s, snap)
    with pytest.raises(SnapshotInvalid, match="run"):
        Engine(s, run_id="other", started_at=T0, snapshot=e.snapshot())


def test_hot_edit_of_triggers_and_removed_tasks() -> None:
    base = script(task("once", at(10), log("o")), task("tick", every(60), log("t")),
                  task("seq", at(20), cmd("u1/aeration", "on"), wait(100), cmd("u1/aeration", "off")))
    d = Driver(engine(base))
    d.start()
    d.to(50)
    assert fired(d.effects) == ["tick", "once", "seq"]
    new = edit(base, tasks=(task("once", at(40), log("o")), task("tick", every(100), log("t"))))
    eff, diff = d.engine.apply(new, d.now, "ana")
    d.feed(eff)
    assert diff.changed == ("task:once", "task:tick") and diff.removed == ("task:seq",)
    assert d.engine.tasks["tick"].dues == [T0 + 100]  # the new grid from the run's start
    assert d.engine.tasks["tick"].fired == 1  # counts kept
    d.to(500)
    # `once` fired before: at its new (passed) time it does not fire again; `seq` ended mid-wait
    assert fired(d.effects) == ["tick", "once", "seq", "tick", "tick", "tick", "tick", "tick"]
    assert ("u1/aeration", "off", {}) not in commands(d.effects)
