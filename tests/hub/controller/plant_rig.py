"""The engine over hub.simulate's SimulatedPlant (examples/unit.yaml as bench-1), on simulated time.

The plant answers as the unit does: device commands only in IDLE (a module
running a `pulse`, `run` or `dose` is BUSY and refuses them, kind `state`),
ABORT only in BUSY or PAUSED.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.controller.effects import CommandEffect, Effect, LogEffect, Outcome, Reading
from hub.controller.engine import Engine
from hub.script.loader import parse_script
from hub.script.model import Script
from hub.simulate.clock import SimClock
from hub.simulate.events import Agenda
from hub.simulate.plant import SimulatedPlant
from hub.simulate.units import read_units
from sim.vessel import Vessel, VesselParams

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
HEAD = "experiment: t\nunits: {bench-1: unit.yaml}\n"
_UNITS = read_units(EXAMPLES / "respirometry.yaml", {"bench-1": "unit.yaml"})


def parse(text: str) -> Script:
    return parse_script(HEAD + text, str(EXAMPLES / "t.yaml"), _UNITS[0])


def example(name: str = "respirometry.yaml") -> Script:
    """One of examples/ as written."""
    return parse_script((EXAMPLES / name).read_text(), str(EXAMPLES / name), _UNITS[0])


class PlantRig:
    """Feeds the engine what the simulated unit publishes and carries out its commands, in order."""

    def __init__(self, text: str, latency: Callable[[int], tuple[float, float]] | None = None,
                 script: Script | None = None) -> None:
        """`latency(n)`: for the n-th command, seconds to reach the unit and for its answer to come back."""
        self.script = script if script is not None else parse(text)
        self.latency = latency
        self.clock, self.agenda = SimClock(), Agenda()
        self.vessel = Vessel(self.clock, VesselParams())
        self.plant = SimulatedPlant(_UNITS[0], _UNITS[1], self.vessel, self.clock, self.agenda, self)
        self.engine = Engine(self.script, run_id="r1", started_at=self.clock.epoch())
        self.logs: list[tuple[float, LogEffect]] = []
        self.answers: list[tuple[float, str, str, str, str]] = []  # t, module, cmd, status, error kind
        self.heater: list[tuple[float, bool]] = []  # the heater's output as the unit published it
        self._inputs: deque[Callable[[float], list[Effect]]] = deque()
        self._driving = False
        self._sent = 0

    def start(self) -> None:
        self.plant.start()
        self.drive(self.engine.start)

    def drive(self, feed: Callable[[float], list[Effect]]) -> None:
        self._inputs.append(feed)
        if self._driving:
            return
        self._driving = True
        try:
            while self._inputs:
                for effect in self._inputs.popleft()(self.clock.epoch()):
                    if isinstance(effect, CommandEffect):
                        self._submit(effect)
                    elif isinstance(effect, LogEffect):
                        self.logs.append((self.clock.elapsed, effect))
        finally:
            self._driving = False

    def _submit(self, effect: CommandEffect) -> None:
        self._sent += 1
        there, back = self.latency(self._sent) if self.latency is not None else (0.0, 0.0)

        def answered(outcome: Outcome) -> None:
            if back > 0:
                self.agenda.at(self.clock.elapsed + back, lambda: self._answered(effect, outcome))
            else:
                self._answered(effect, outcome)

        def arrive() -> None:
            self.plant.submit(effect.unit, effect.module, effect.cmd, effect.args, answered)

        if there > 0:
            self.agenda.at(self.clock.elapsed + there, arrive)
        else:
            arrive()

    def _answered(self, effect: CommandEffect, outcome: Outcome) -> None:
        kind = str((outcome.error or {}).get("kind", ""))
        self.answers.append((self.clock.elapsed, str(effect.module), effect.cmd, outcome.status, kind))
        self.drive(lambda now: self.engine.on_outcome(effect.effect_id, outcome, now))

    def until(self, t: float) -> None:
        """Move simulated time to `t`, stopping at every plant item and engine due time on the way."""
        advanced = -1.0
        while True:
            times = [x for x in (self.agenda.next_time(),) if x is not None]
            due = self.engine.next_due()
            if due is not None:
                # a deadline already served (and not moved) must not hold the clock still
                at = max(due - self.clock.epoch(0.0), self.clock.elapsed)
                if at > advanced:
                    times.append(at)
            nxt = min(times) if times else None
            if nxt is None or nxt > t:
                break
            self.clock.set_elapsed(max(self.clock.elapsed, nxt))
            while (item := self.agenda.pop_due(self.clock.elapsed)) is not None:
                if not item.cancelled:
                    item.action()
            advanced = self.clock.elapsed
            self.drive(self.engine.advance)
        self.clock.set_elapsed(max(self.clock.elapsed, t))
        self.drive(self.engine.advance)

    def alarms(self) -> list[str]:
        return [f"{e.code}: {e.message}" for _, e in self.logs if e.level == "alarm"]

    def refused(self, kind: str = "state") -> list[tuple[float, str, str]]:
        return [(t, m, c) for t, m, c, status, k in self.answers if status == "rejected" and k == kind]

    # ---- the PlantListener --------------------------------------------------------------------
    def reading(self, reading: Reading) -> None:
        self.drive(lambda now: self.engine.on_reading(reading, now))

    def state(self, unit: str, module: str, outputs: dict[str, Any], lecis: str) -> None:
        if module == "heater":
            self.heater.append((self.clock.elapsed, bool(outputs.get("on"))))

    def event(self, unit: str, module: str, seq: int, level: str, code: str, message: str) -> None:
        self.drive(lambda now: self.engine.on_event(unit, module, code, now))
