"""Random runs: readings, time, answers, restarts from snapshots and hot edits never fire an `at` twice."""

from __future__ import annotations

import json

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from hub.controller.effects import CommandEffect, Effect, Outcome
from hub.controller.engine import Engine
from tests.hub.controller.scripts import (
    T0,
    after,
    at,
    cmd,
    edit,
    every,
    fired,
    guard,
    log,
    onoff,
    pid,
    reading,
    script,
    setvar,
    signal,
    task,
    wait,
    when,
    while_,
)

V1 = script(
    task("once", at(50), cmd("u1/aeration", "on"), wait(20), cmd("u1/aeration", "off")),
    task("late", at(400), setvar("n", "n + 1")),
    task("tick", every(30, for_s=2000), log("t")),
    task("then", after("once", delay=5), log("after once")),
    task("fault", after(event="probe_fault", delay=3), cmd("u1/heater", "off")),
    task("low", when("u1/ph1.ph < 6.8", for_s=10), cmd("u1/base_pump", "dose", ml=1)),
    task("warm", while_("u1/t1.temp < 24", 60, cmd("u1/fan", "off")), cmd("u1/fan", "on")),
    loops=(onoff("ph", "u1/ph1.ph", "u1/base_pump", 6.8, 7.0, min_on=5, min_off=5),
           pid("heat", "u1/t1.temp", "u1/heater", "25", kp=0.2, ki=0.01, period_s=20)),
    signals=(signal("trend", "slope", "u1/t1.temp", 120, 60),),
    guards=(guard("hot", "u1/t1.temp > 35", cmd("u1/heater", "off")),),
    variables={"n": 0}, stale_after=120, on_error="continue", duration=5000, text="v1\n")
V2 = edit(V1, tasks=V1.tasks[:2] + (task("tick", every(45), log("t2")), task("new", at(300), log("new"))),
          text="v2\n")
AT_TASKS = ("once", "late", "new")


class EngineRun(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.engine = Engine(V1, run_id="r", started_at=T0)
        self.in_flight: list[str] = []
        self.fired: dict[str, int] = {}
        self.take(self.engine.start(self.now))

    def take(self, effects: list[Effect]) -> None:
        for name in fired(effects):
            self.fired[name] = self.fired.get(name, 0) + 1
        self.in_flight += [e.effect_id for e in effects if isinstance(e, CommandEffect)]

    @rule(ph=st.floats(6.0, 8.0), temp=st.floats(15.0, 40.0))
    def readings(self, ph: float, temp: float) -> None:
        self.take(self.engine.on_reading(reading("u1/ph1.ph", ph, self.now), self.now))
        self.take(self.engine.on_reading(reading("u1/t1.temp", temp, self.now), self.now))

    @rule(seconds=st.floats(0.0, 400.0))
    def time_passes(self, seconds: float) -> None:
        target = self.now + seconds
        while (due := self.engine.next_due()) is not None and due <= target:
            self.now = max(self.now, due)
            self.take(self.engine.advance(self.now))
            after_due = self.engine.next_due()
            assert after_due is None or after_due > self.now, "advance left something due: a busy loop"
        self.now = target
        self.take(self.engine.advance(self.now))

    @rule(data=st.data(), status=st.sampled_from(["done", "done", "failed", "rejected", "timeout"]))
    def answer(self, data: st.DataObject, status: str) -> None:
        if self.in_flight:
            effect_id = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
            self.take(self.engine.on_outcome(effect_id, Outcome(status), self.now))  # type: ignore[arg-type]

    @rule(down=st.floats(0.0, 1000.0))
    def restart(self, down: float) -> None:
        snap = json.loads(json.dumps(self.engine.snapshot()))
        self.now += down
        self.engine = Engine(self.engine.script, run_id="r", started_at=T0, snapshot=snap)
        self.in_flight = []
        self.take(self.engine.resume(self.now))

    @rule(version=st.sampled_from([V1, V2]))
    def hot_edit(self, version: object) -> None:
        effects, _ = self.engine.apply(version, self.now, "fuzz")  # type: ignore[arg-type]
        self.take(effects)

    @rule(online=st.booleans())
    def unit_presence(self, online: bool) -> None:
        self.take(self.engine.on_unit_online("u1", online, self.now))

    @rule(code=st.sampled_from(["probe_fault", "other"]))
    def event(self, code: str) -> None:
        self.take(self.engine.on_event("u1", "do1", code, self.now))

    @rule()
    def pause_or_resume(self) -> None:
        if self.engine.paused:
            self.take(self.engine.resume_run(self.now))
        else:
            self.take(self.engine.pause(self.now))

    @invariant()
    def no_at_fired_twice(self) -> None:
        for name in AT_TASKS:
            assert self.fired.get(name, 0) <= 1, f"`at` task {name} fired {self.fired[name]} times"

    @invariant()
    def status_is_json(self) -> None:
        json.dumps(self.engine.status(self.now))


EngineRun.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
test_random_runs = EngineRun.TestCase
