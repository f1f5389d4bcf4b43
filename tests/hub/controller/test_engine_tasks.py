"""Timed and condition tasks: which commands go out when."""

from __future__ import annotations

from hub.controller.effects import CommandEffect, Outcome
from hub.controller.engine import Engine
from tests.hub.controller.scripts import (
    T0,
    Driver,
    after,
    at,
    cmd,
    commands,
    every,
    fired,
    log,
    logs,
    reading,
    script,
    setvar,
    task,
    wait,
    when,
    while_,
)


def engine(s: object) -> Engine:
    return Engine(s, run_id="r1", started_at=T0)  # type: ignore[arg-type]


def test_at_fires_once_at_its_time() -> None:
    d = Driver(engine(script(task("aerate", at(30), cmd("u1/aeration", "on")))))
    assert commands(d.start()) == []
    assert commands(d.to(29.9)) == []
    assert commands(d.to(30)) == [("u1/aeration", "on", {})]
    assert commands(d.to(3000)) == []


def test_sequence_waits_and_each_command_waits_for_its_outcome() -> None:
    s = script(task("cycle", at(0), cmd("u1/aeration", "on"), wait(60), cmd("u1/aeration", "off"),
                    cmd("u1/base_pump", "dose", ml=2)))
    e = engine(s)
    first = e.start(T0)
    assert commands(first) == [("u1/aeration", "on", {})]
    c = next(x for x in first if isinstance(x, CommandEffect))
    assert commands(e.advance(T0 + 100)) == []  # the wait has not begun: the command is in flight
    assert commands(e.on_outcome(c.effect_id, Outcome("done"), T0 + 1)) == []
    assert e.next_due() == T0 + 61
    off = e.advance(T0 + 61)
    assert commands(off) == [("u1/aeration", "off", {})]
    c2 = next(x for x in off if isinstance(x, CommandEffect))
    after_off = e.on_outcome(c2.effect_id, Outcome("done"), T0 + 61.2)
    assert commands(after_off) == [("u1/base_pump", "dose", {"ml": 2})]


def test_every_with_for_fires_the_right_number_of_times() -> None:
    d = Driver(engine(script(task("sample", every(600, for_s=3600), log("x")))))
    d.start()
    d.to(10 * 3600)
    assert fired(d.effects) == ["sample"] * 6


def test_every_until_stops_when_true() -> None:
    s = script(task("count", every(10), setvar("n", "n + 1")), variables={"n": 0})
    s2 = script(task("count", every(10, until="n >= 3"), setvar("n", "n + 1")), variables={"n": 0})
    d = Driver(engine(s2))
    d.start()
    d.to(1000)
    assert fired(d.effects) == ["count"] * 3
    assert d.engine.values.variables["n"] == 3
    assert logs(d.effects, "task_ended")
    d1 = Driver(engine(s))
    d1.start()
    d1.to(95)
    assert len(fired(d1.effects)) == 10  # 0, 10, ... 90


def test_after_task_and_after_event() -> None:
    s = script(task("aerate", at(0), cmd("u1/aeration", "on"), wait(100), cmd("u1/aeration", "off")),
               task("measure", after("aerate", delay=5), log("measuring")),
               task("fault", after(event="probe_fault", delay=2), cmd("u1/heater", "off")))
    d = Driver(engine(s))
    d.start()
    d.to(104)
    assert "measure" not in fired(d.effects)
    d.to(105)
    assert fired(d.effects) == ["aerate", "measure"]
    d.feed(d.engine.on_event("u1", "do1", "probe_fault", T0 + 200))
    d.now = T0 + 200
    assert commands(d.to(202)) == [("u1/heater", "off", {})]


def test_when_fires_on_the_edge_and_rearms() -> None:
    s = script(task("low", when("u1/ph1.ph < 6.8"), cmd("u1/base_pump", "dose", ml=1)))
    d = Driver(engine(s))
    d.start()
    sent = []
    for i, v in enumerate([7.0, 6.7, 6.6, 6.5, 7.0, 6.7]):
        sent += commands(d.read("u1/ph1.ph", v, i + 1))
    assert sent == [("u1/base_pump", "dose", {"ml": 1})] * 2  # at 6.7, and again after re-arming


def test_when_for_ignores_a_one_reading_spike() -> None:
    s = script(task("hot", when("u1/t1.temp > 30", for_s=10), cmd("u1/heater", "off")))
    d = Driver(engine(s))
    d.start()
    assert commands(d.read("u1/t1.temp", 31, 1)) == []
    assert commands(d.read("u1/t1.temp", 25, 2)) == []  # spike over: the pending `for` is dropped
    assert commands(d.to(20)) == []
    d.read("u1/t1.temp", 31, 21)
    assert commands(d.read("u1/t1.temp", 31.5, 25)) == []
    assert commands(d.to(31)) == [("u1/heater", "off", {})]
    assert commands(d.read("u1/t1.temp", 32, 40)) == []  # still true: no new edge


def test_when_reads_signals_and_variables_not_by_polling() -> None:
    s2 = script(task("arm", at(10), setvar("armed", "true")),
                task("go", when("armed and u1/ph1.ph > 7"), log("go")), variables={"armed": False})
    d = Driver(engine(s2))
    d.start()
    d.read("u1/ph1.ph", 7.5, 5)
    assert "go" not in fired(d.effects)
    d.to(10)  # the variable changes: the condition is evaluated again, with the last fresh pH
    assert fired(d.effects) == ["arm", "go"]


def test_while_runs_every_period_and_on_exit() -> None:
    s = script(task("mix", while_("u1/do1.do < 2", 30, cmd("u1/aeration", "off")), cmd("u1/aeration", "on")))
    d = Driver(engine(s))
    d.start()
    out = []
    for t in range(1, 80, 5):
        out += commands(d.read("u1/do1.do", 1.0, t))
    assert out == [("u1/aeration", "on", {})] * 3  # at 1, 31, 61
    assert commands(d.read("u1/do1.do", 3.0, 82)) == [("u1/aeration", "off", {})]


def test_stale_readings_never_fire_a_condition_and_are_warned_once() -> None:
    s = script(task("low", when("u1/ph1.ph < 6.8"), log("low")), stale_after=30)
    e = engine(s)
    d = Driver(e)
    d.start()
    d.read("u1/ph1.ph", 7.0, 1)
    # a backlog reading stamped 100 s ago arrives now: stored, never fresh
    d.to(200)
    d.feed(e.on_reading(reading("u1/ph1.ph", 6.0, T0 + 100), T0 + 200))
    assert fired(d.effects) == []
    warned = [w.data["name"] for w in logs(d.effects, "stale_reading")]
    assert warned == ["u1/ph1.ph"]  # once for the episode (at 31 s), not per evaluation
    d.read("u1/ph1.ph", 6.5, 201)
    assert fired(d.effects) == ["low"]
    assert logs(d.effects, "reading_fresh")


def test_task_does_not_overlap_itself() -> None:
    s = script(task("slow", every(10), wait(25), log("done")))
    d = Driver(engine(s))
    d.start()
    d.to(100)
    # a run takes 25 s: due times while it runs collapse into one firing as soon as it ends
    starts = [e.data["due"] for e in logs(d.effects, "task_fired")]
    # the first due time that had passed, for firings at 0, 25, 50, 75, 100 s
    assert [s - T0 for s in starts] == [0, 10, 30, 60, 80]


def test_status_names_next_due_tasks() -> None:
    d = Driver(engine(script(task("a", at(100), log("a")), task("b", every(30, start=10), log("b")))))
    d.start()
    st = d.engine.status(T0)
    assert st["state"] == "running"
    assert [n["task"] for n in st["next_due"]] == ["b", "a"]
    assert st["next_due"][0]["due"] == T0 + 10


def test_a_condition_on_time_alone_is_evaluated_as_time_passes() -> None:
    s = script(task("late", when("t > 100"), log("late")),
               task("quiet", when("age(u1/do1.do) > 20"), log("no DO for 20 s")))
    d = Driver(engine(s))
    d.start()
    d.read("u1/do1.do", 5.0, 1)
    d.to(21.5)
    assert fired(d.effects) == []
    d.to(22.5)
    assert fired(d.effects) == ["quiet"]  # within the 1 s re-evaluation of time-only conditions
    d.to(101.5)
    assert fired(d.effects) == ["quiet", "late"]
    assert d.engine.status(d.now)["fired"] == {"late": 1, "quiet": 1}
