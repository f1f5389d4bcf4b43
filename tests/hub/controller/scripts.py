"""Small builders of checked Script values for the controller's tests (no YAML, no unit files)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hub.controller.effects import CommandEffect, Effect, LogEffect, Outcome, Reading
from hub.controller.engine import Engine
from hub.script.expr import parse_expression
from hub.script.model import (
    Action,
    After,
    At,
    Every,
    Guard,
    Log,
    OnOffLoop,
    PidLoop,
    Position,
    Script,
    SendCommand,
    SetVariable,
    Signal,
    Task,
    Trigger,
    Value,
    Wait,
    When,
    While,
)

HERE = Position("test.yaml", 1, 1)
T0 = 1_800_000_000.0  # the run's start, epoch seconds


def expr(text: str) -> Any:
    return parse_expression(text, HERE)


def cmd(target: str, name: str, **args: Value) -> SendCommand:
    unit, module = target.split("/")
    return SendCommand(unit, module, name, args, HERE)


def log(text: str) -> Log:
    return Log(text, (text,), "info", HERE)


def wait(seconds: float) -> Wait:
    return Wait(seconds, HERE)


def setvar(name: str, value: str) -> SetVariable:
    return SetVariable(name, expr(value), HERE)


def task(name: str, trigger: Trigger, *actions: Action) -> Task:
    return Task(name, trigger, tuple(actions), HERE)


def at(s: float) -> At:
    return At(s)


def every(period: float, start: float = 0.0, for_s: float | None = None, until: str | None = None) -> Every:
    return Every(period, start, for_s, expr(until) if until else None)


def after(task_name: str | None = None, delay: float = 0.0, event: str | None = None) -> After:
    return After(task_name, event, delay)


def when(cond: str, for_s: float = 0.0) -> When:
    return When(expr(cond), for_s)


def while_(cond: str, period: float, *on_exit: Action) -> While:
    return While(expr(cond), period, tuple(on_exit))


def onoff(name: str, inp: str, out: str, low: float, high: float, min_on: float = 0.0, min_off: float = 0.0,
          enabled: str | None = None) -> OnOffLoop:
    unit, module = out.split("/")
    return OnOffLoop(name, inp, (unit, module), True, low, high, min_on, min_off, HERE,
                     expr(enabled) if enabled else None)


def pid(name: str, inp: str, out: str, setpoint: str, kp: float, ki: float, kd: float = 0.0,
        out_min: float = 0.0, out_max: float = 1.0, period_s: float = 0.0) -> PidLoop:
    unit, module = out.split("/")
    return PidLoop(name, inp, (unit, module), expr(setpoint), kp, ki, kd, out_min, out_max, period_s, HERE)


def signal(name: str, kind: str, source: str, window_s: float, scale: float = 1.0) -> Signal:
    return Signal(name, kind, source, window_s, scale, HERE)  # type: ignore[arg-type]


def guard(name: str, cond: str, *outputs: SendCommand) -> Guard:
    return Guard(name, expr(cond), tuple(outputs), HERE)


def script(*tasks: Task, loops: tuple[Any, ...] = (), signals: tuple[Signal, ...] = (),
           guards: tuple[Guard, ...] = (), variables: dict[str, Value] | None = None,
           stale_after: float = 60.0, on_error: str = "stop", duration: float | None = None,
           text: str = "experiment: test\n") -> Script:
    return Script("test", "test.yaml", text, {"u1": "u1.yaml"}, duration, stale_after, on_error,  # type: ignore
                  variables or {}, signals, loops, guards, tasks)


def edit(base: Script, **changes: Any) -> Script:
    return replace(base, **changes)


def reading(name: str, value: float, ts: float) -> Reading:
    um, key = name.split(".")
    unit, module = um.split("/")
    return Reading(unit, module, ts, {key: value})


def commands(effects: list[Effect]) -> list[tuple[str, str, dict[str, Value]]]:
    """(unit/module, cmd, args) of every command effect, in order."""
    return [(f"{e.unit}/{e.module}", e.cmd, dict(e.args)) for e in effects if isinstance(e, CommandEffect)]


def logs(effects: list[Effect], code: str) -> list[LogEffect]:
    return [e for e in effects if isinstance(e, LogEffect) and e.code == code]


def fired(effects: list[Effect]) -> list[str]:
    return [str(e.data["task"]) for e in logs(effects, "task_fired")]


class Driver:
    """Runs an engine like the runner does, answering every command `done` at once."""

    def __init__(self, engine: Engine, answer: str = "done") -> None:
        self.engine = engine
        self.answer = answer
        self.effects: list[Effect] = []
        self.now = engine.started_at

    def feed(self, effects: list[Effect]) -> list[Effect]:
        out = list(effects)
        queue = [e for e in effects if isinstance(e, CommandEffect)]
        while queue:
            c = queue.pop(0)
            more = self.engine.on_outcome(c.effect_id, Outcome(self.answer), self.now)  # type: ignore[arg-type]
            out.extend(more)
            queue.extend(e for e in more if isinstance(e, CommandEffect))
        self.effects.extend(out)
        return out

    def start(self) -> list[Effect]:
        return self.feed(self.engine.start(self.now))

    def to(self, t: float) -> list[Effect]:
        """Advance to T0 + t, stopping at every due time on the way (as the runner's sleep does)."""
        out: list[Effect] = []
        target = T0 + t
        while True:
            due = self.engine.next_due()
            if due is None or due > target:
                break
            self.now = max(self.now, due)
            out.extend(self.feed(self.engine.advance(self.now)))
        self.now = target
        out.extend(self.feed(self.engine.advance(self.now)))
        return out

    def read(self, name: str, value: float, t: float | None = None) -> list[Effect]:
        out = self.to(t) if t is not None else []
        out.extend(self.feed(self.engine.on_reading(reading(name, value, self.now), self.now)))
        return out
