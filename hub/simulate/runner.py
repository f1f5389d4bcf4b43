"""A discrete-event run of the controller's Engine over a SimulatedPlant, on a simulated clock.

The clock jumps to the next thing due: an instrument reading, a timed command
ending or a watchdog (the plant's agenda), or `engine.next_due()`. With
`speed` N the run is paced at N simulated seconds per wall second (it never
sleeps to catch up when behind); speed 0 runs as fast as it can. What the
units would publish (readings, states, events) and what the engine does
(commands and their outcomes, logs, derived signals) go to the recorder, as
in a real run, with timestamps from the simulated clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.controller.effects import (
    CommandEffect,
    DerivedEffect,
    Effect,
    LogEffect,
    Outcome,
    Reading,
    SessionEffect,
    Sink,
)
from hub.controller.engine import Engine
from hub.script.model import Script
from hub.simulate.clock import SimClock
from hub.simulate.events import Agenda
from hub.simulate.plant import SimulatedPlant
from hub.simulate.trace import Trace
from lecis.clock import iso_ts
from lecis.dcd import Dcd
from lecis.wire.birth import Birth
from sim.vessel import Vessel, VesselParams

log = logging.getLogger("labedge.simulate")

LIVE_STATES = frozenset({"ready", "running", "paused", "held"})
_AHEAD_S = 0.005  # sleep only when this far ahead of the pace: fewer, longer sleeps


class Recording:
    """What the runner needs of the recorder (hub.recorder.Recorder and its run's sink)."""

    def __init__(self, ingest: Callable[[str, str, str, dict[str, Any], float], None] | None,
                 sink: Sink | None) -> None:
        self.ingest = ingest
        self.sink = sink


@dataclass(frozen=True)
class SimulationSettings:
    duration_s: float
    speed: float = 1000.0  # simulated seconds per wall second; 0: as fast as possible
    run_id: str = "sim"
    vessel: VesselParams = field(default_factory=VesselParams)
    roles: Mapping[str, str] | None = None


class Simulation:
    """One run of `script` against simulated units; `await run()` returns its Trace."""

    def __init__(self, script: Script, births: Mapping[str, Birth], dcds: Mapping[str, tuple[Dcd, ...]],
                 settings: SimulationSettings, clock: SimClock | None = None,
                 recording: Recording | None = None, *, wall: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.script, self.settings = script, settings
        self.clock = clock or SimClock()
        self.agenda = Agenda()
        self.vessel = Vessel(self.clock, settings.vessel)
        self.plant = SimulatedPlant(births, dcds, self.vessel, self.clock, self.agenda, self, settings.roles)
        self.recording = recording or Recording(None, None)
        self.engine = Engine(script, run_id=settings.run_id, started_at=self.clock.epoch())
        self.trace = Trace()
        self._wall, self._sleep = wall, sleep  # pacing in wall time, injectable for tests
        self._inputs: deque[Callable[[float], list[Effect]]] = deque()
        self._driving = False

    # ---- the loop -------------------------------------------------------------------------------
    async def run(self) -> Trace:
        end = self.settings.duration_s
        if self.script.duration_s is not None:
            end = min(end, self.script.duration_s)
        self.plant.start()
        self._drive(self.engine.start)
        wall0 = self._wall()
        advanced_at = -1.0
        while self.engine.state in LIVE_STATES:
            t = self._next_time(advanced_at)
            if t is None or t > end:
                break
            await self._pace(wall0, t)
            self.clock.set_elapsed(t)
            while (item := self.agenda.pop_due(t)) is not None:
                if not item.cancelled:
                    item.action()
            due = self.engine.next_due()
            if due is not None and due - self.clock.epoch(0.0) <= t:
                advanced_at = t
                self._drive(self.engine.advance)
        if self.engine.state in LIVE_STATES:
            self.clock.set_elapsed(max(self.clock.elapsed, end))
            self._drive(lambda now: self.engine.stop(now, f"the simulation reached {end:g} s"))
        stopped_at = self.clock.elapsed
        # Timed commands still running (a last heater pulse) end by themselves, as on a unit.
        while runs := [m.output.run for m in self.plant.modules.values() if m.output and m.output.run]:
            first = min(runs, key=lambda run: run.end.at)
            self.clock.set_elapsed(max(self.clock.elapsed, first.end.at))
            first.end.action()
        self.trace.duration_s = stopped_at
        self.trace.final_state = self.engine.state
        return self.trace

    def _next_time(self, advanced_at: float) -> float | None:
        times = []
        agenda = self.agenda.next_time()
        if agenda is not None:
            times.append(agenda)
        due = self.engine.next_due()
        if due is not None:
            # An engine deadline already served (and not moved) must not hold the clock still.
            t = max(due - self.clock.epoch(0.0), self.clock.elapsed)
            if t > advanced_at:
                times.append(t)
        return min(times) if times else None

    async def _pace(self, wall0: float, t: float) -> None:
        if self.settings.speed <= 0:
            return
        ahead = wall0 + t / self.settings.speed - self._wall()
        if ahead > _AHEAD_S:
            await self._sleep(ahead)

    def _drive(self, feed: Callable[[float], list[Effect]]) -> None:
        """Give the engine one input, then carry out its effects (and what they lead to) in order."""
        self._inputs.append(feed)
        if self._driving:
            return
        self._driving = True
        try:
            while self._inputs:
                now = self.clock.epoch()
                for effect in self._inputs.popleft()(now):
                    self._carry_out(effect, now)
        finally:
            self._driving = False

    def _carry_out(self, effect: Effect, now: float) -> None:
        sink = self.recording.sink
        if sink is not None:
            sink.effect(effect, now, None)
        t = self.clock.elapsed
        if isinstance(effect, CommandEffect):
            self.plant.submit(effect.unit, effect.module, effect.cmd, effect.args,
                              lambda outcome: self._answered(effect, outcome))
        elif isinstance(effect, DerivedEffect):
            self.trace.signals[effect.name].append((effect.ts - self.clock.epoch(0.0), effect.value))
        elif isinstance(effect, LogEffect):
            self.trace.logs.append((t, effect.level, effect.code, effect.message))
            if effect.level != "info":
                log.warning("%.0f s: %s %s: %s", t, effect.level, effect.code, effect.message)
        elif isinstance(effect, SessionEffect):
            self.trace.logs.append((t, "info", f"session_{effect.action}", effect.unit))

    def _answered(self, effect: CommandEffect, outcome: Outcome) -> None:
        now = self.clock.epoch()
        module = f"{effect.unit}/{effect.module or '$cmd'}"
        self.trace.commands.append((self.clock.elapsed, module, effect.cmd, outcome.status))
        if self.recording.sink is not None:
            self.recording.sink.effect(effect, now, outcome)
        self._drive(lambda at: self.engine.on_outcome(effect.effect_id, outcome, at))

    # ---- what the simulated units publish (the PlantListener) ---------------------------------
    def reading(self, reading: Reading) -> None:
        t = reading.ts - self.clock.epoch(0.0)
        for name, value in reading.values.items():
            self.trace.readings[f"{reading.unit}/{reading.module}.{name}"].append((t, value))
        if self.recording.ingest is not None:
            payload = {"seq": reading.seq, "hist": False,
                       "readings": [{"ts": iso_ts(datetime.fromtimestamp(reading.ts, UTC)),
                                     "values": dict(reading.values)}]}
            self.recording.ingest(reading.unit, reading.module, "data", payload, self.clock.epoch())
        self._drive(lambda now: self.engine.on_reading(reading, now))

    def state(self, unit: str, module: str, outputs: dict[str, Any], lecis: str) -> None:
        key = f"{unit}/{module}"
        if outputs:
            self.trace.outputs[key].append((self.clock.elapsed, self.trace.output_level(key, outputs)))
        if self.recording.ingest is not None:
            payload = {"lecis": lecis, "control": "REMOTE", "outputs": outputs, "error": None,
                       "ts": iso_ts(self.clock.now())}
            self.recording.ingest(unit, module, "state", payload, self.clock.epoch())

    def event(self, unit: str, module: str, seq: int, level: str, code: str, message: str) -> None:
        self.trace.unit_events.append((self.clock.elapsed, f"{unit}/{module}", code, message))
        if self.recording.ingest is not None:
            payload = {"seq": seq, "ts": iso_ts(self.clock.now()), "level": level, "code": code,
                       "message": message}
            self.recording.ingest(unit, module, "event", payload, self.clock.epoch())
        self._drive(lambda now: self.engine.on_event(unit, module, code, now))
