"""Guards, pause/resume at boundaries, stop, on_error: what the experiment does and sends."""

from __future__ import annotations

from hub.controller.effects import CommandEffect, Outcome
from hub.controller.engine import Engine
from tests.hub.controller.scripts import (
    T0,
    Driver,
    at,
    cmd,
    commands,
    every,
    fired,
    guard,
    log,
    logs,
    onoff,
    script,
    setvar,
    task,
    wait,
)


def engine(s: object) -> Engine:
    return Engine(s, run_id="r1", started_at=T0)  # type: ignore[arg-type]


def test_guard_holds_defers_tasks_stops_loops_and_releases() -> None:
    s = script(task("sample", every(60), cmd("u1/sampler", "pulse", seconds=1)),
               loops=(onoff("ph", "u1/ph1.ph", "u1/base_pump", 6.8, 7.0),),
               guards=(guard("do_low", "u1/do1.do < 1", cmd("u1/base_pump", "off"),
                             cmd("u1/aeration", "on")),))
    d = Driver(engine(s))
    d.start()
    assert d.engine.state == "held"  # no DO reading yet: the guard fails safe
    d.read("u1/do1.do", 5.0, 0.5)
    assert d.engine.state == "running"
    assert fired(d.effects) == ["sample"]  # due at 0, fired at release
    d.read("u1/ph1.ph", 6.5, 1)
    held = d.read("u1/do1.do", 0.5, 50)
    assert d.engine.state == "held"
    assert commands(held) == [("u1/base_pump", "off", {}), ("u1/aeration", "on", {})]
    assert commands(d.read("u1/ph1.ph", 7.5, 55)) == []  # loops do not actuate while held
    d.to(200)  # `every 60` falls due at 60, 120, 180 during the hold
    assert fired(d.effects) == ["sample"]
    released = d.read("u1/do1.do", 4.0, 201)
    assert d.engine.state == "running"
    assert logs(released, "guard_release")
    assert fired(released) == ["sample"]  # once for the three missed due times
    assert ("u1/base_pump", "on", {}) in commands(released)  # the loop's wanted output re-applied
    assert d.engine.next_due() == T0 + 240


def test_unit_offline_holds_a_guard_that_reads_it() -> None:
    s = script(task("a", at(100), log("a")), guards=(guard("probe", "u1/do1.do < 0"),))
    d = Driver(engine(s))
    d.start()
    d.read("u1/do1.do", 5.0, 1)
    d.feed(d.engine.on_unit_online("u1", False, T0 + 2))
    assert d.engine.state == "held"
    d.read("u1/do1.do", 5.0, 150)
    assert d.engine.state == "held" and fired(d.effects) == []
    d.feed(d.engine.on_unit_online("u1", True, T0 + 160))
    assert fired(d.effects) == ["a"]


def test_pause_takes_effect_at_the_boundary_and_resume_continues() -> None:
    s = script(task("seq", at(0), cmd("u1/aeration", "on"), cmd("u1/aeration", "off"),
                    cmd("u1/heater", "on")))
    e = engine(s)
    first = [c for c in e.start(T0) if isinstance(c, CommandEffect)]
    assert e.pause(T0 + 1)
    assert e.state == "paused"
    # the command in flight finishes; the next action waits for resume
    assert commands(e.on_outcome(first[0].effect_id, Outcome("done"), T0 + 2)) == []
    assert commands(e.advance(T0 + 100)) == []
    assert commands(e.resume_run(T0 + 101)) == [("u1/aeration", "off", {})]


def test_stop_turns_every_touched_output_off() -> None:
    s = script(task("go", at(0), cmd("u1/aeration", "on"), cmd("u1/base_pump", "dose", ml=1)),
               loops=(onoff("t", "u1/t1.temp", "u1/heater", 24, 25),))
    d = Driver(engine(s))
    d.start()
    out = d.engine.stop(T0 + 5, "operator")
    assert sorted(commands(out)) == [("u1/aeration", "off", {}), ("u1/base_pump", "off", {}),
                                     ("u1/heater", "off", {})]
    assert d.engine.state == "stopped"
    assert logs(out, "stopped")
    assert d.engine.next_due() is None


def test_on_error_stop_pause_continue() -> None:
    def run(policy: str) -> tuple[Engine, list[tuple[str, str, dict[str, object]]]]:
        s = script(task("go", at(0), cmd("u1/aeration", "on"), cmd("u1/heater", "on")), on_error=policy)
        e = engine(s)
        c = next(x for x in e.start(T0) if isinstance(x, CommandEffect))
        return e, commands(e.on_outcome(c.effect_id, Outcome("rejected", {"message": "denied"}), T0 + 1))

    e, sent = run("stop")
    assert e.state == "stopped" and ("u1/aeration", "off", {}) in sent
    e, sent = run("pause")
    assert e.state == "paused" and sent == []
    assert commands(e.resume_run(T0 + 5)) == [("u1/heater", "on", {})]
    e, sent = run("continue")
    assert e.state == "running" and sent == [("u1/heater", "on", {})]


def test_duration_finishes_the_run_with_outputs_off() -> None:
    d = Driver(engine(script(task("go", at(0), cmd("u1/aeration", "on"), wait(1)), duration=3600)))
    d.start()
    out = d.to(4000)
    assert d.engine.state == "finished"
    assert commands(out) == [("u1/aeration", "off", {})]


def test_a_stale_reading_holds_a_guard_that_reads_it_until_fresh_data_returns() -> None:
    s = script(task("tick", every(60), log("t")), guards=(guard("probe", "u1/do1.do < 0.5",
                                                                cmd("u1/aeration", "on")),), stale_after=30)
    d = Driver(engine(s))
    d.start()
    d.read("u1/do1.do", 6.0, 1)
    assert d.engine.state == "running"
    held = d.to(40)  # no DO since 1 s: stale at 31 s, detected at its deadline, not at the next reading
    assert d.engine.state == "held"
    assert [w.data["name"] for w in logs(held, "stale_reading")] == ["u1/do1.do"]
    assert commands(held) == [("u1/aeration", "on", {})]
    d.to(200)
    assert fired(d.effects) == ["tick"]
    d.read("u1/do1.do", 6.0, 201)
    assert d.engine.state == "running" and fired(d.effects) == ["tick", "tick"]


def test_a_loop_with_enabled_false_turns_its_output_off_and_stays_off() -> None:
    s = script(task("no_more", at(10), setvar("dosing", "false")),
               loops=(onoff("ph", "u1/ph1.ph", "u1/base_pump", 6.8, 7.0, enabled="dosing"),),
               variables={"dosing": True})
    d = Driver(engine(s))
    d.start()
    assert commands(d.read("u1/ph1.ph", 6.5, 1)) == [("u1/base_pump", "on", {})]
    assert commands(d.to(10)) == [("u1/base_pump", "off", {})]  # the variable change disables it at once
    assert commands(d.read("u1/ph1.ph", 6.4, 11)) == []
