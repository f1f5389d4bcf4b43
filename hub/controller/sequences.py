"""Tasks firing and their action sequences, inside the engine.

A task fires when a due time has passed and nothing blocks (paused, held,
stopped) and its previous run has ended: due times that passed meanwhile
collapse into one firing. A run carries out its actions in order: a `wait` is
a timer, a command waits for its outcome, and while the experiment is paused
or held a run stops at the next action boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.controller.effects import Effect, LogEffect, SessionEffect
from hub.controller.tasks import Part, TaskRun
from hub.controller.timers import every_next
from hub.script.model import (
    Action,
    After,
    At,
    Every,
    Log,
    RunControl,
    SendCommand,
    SessionAction,
    SetVariable,
    Task,
    Wait,
    When,
    While,
)

if TYPE_CHECKING:
    from hub.controller.engine import Engine


def fire_dues(self: Engine, now: float, eff: list[Effect]) -> None:
    for task in self.script.tasks:
        if self._blocked():
            return
        st = self.tasks[task.name]
        busy = any(r.task == task.name for r in self.runs.values())
        if busy:
            continue
        trig = task.trigger
        if isinstance(trig, While) and st.exit_pending:
            st.exit_pending = False
            start_run(self, task, "exit", now, eff)
            continue
        if st.done or not st.dues or st.dues[0] > now:
            continue
        passed = [d for d in st.dues if d <= now]
        st.dues = [d for d in st.dues if d > now]
        if isinstance(trig, At):
            st.done = True
        elif isinstance(trig, Every):
            if trig.until is not None and self.values.truth(trig.until):
                st.done, st.dues = True, []
                eff.append(LogEffect("info", "task_ended", f"task {task.name}: until {trig.until.text!r} "
                                     "is true", f"task:{task.name}"))
                continue
            nxt = every_next(trig, self.started_at, now)
            st.dues = [nxt] if nxt is not None else []
        elif isinstance(trig, When):
            if not st.truth:
                continue
        elif isinstance(trig, While):
            if not st.inside:
                continue
            nxt = passed[-1] + trig.period
            while nxt <= now:
                nxt += trig.period
            st.dues = [nxt]
        st.fired += 1
        st.last_fired = now
        missed = len(passed) - 1
        eff.append(LogEffect("info", "task_fired", f"task {task.name} fired (#{st.fired})"
                             + (f"; {missed} earlier due time(s) passed while it could not fire" if missed
                                else ""), f"task:{task.name}", {"task": task.name, "fired": st.fired,
                                                                 "due": passed[0]}))
        if isinstance(trig, Every) and not st.dues:
            st.done = True
        start_run(self, task, "do", now, eff)



def start_run(self: Engine, task: Task, part: Part, now: float, eff: list[Effect]) -> None:
    self.run_counter += 1
    run = TaskRun(self.run_counter, task.name, part, version=self.version)
    self.runs[run.id] = run
    drive(self, run, now, eff)


def actions_of(self: Engine, run: TaskRun) -> tuple[Action, ...]:
    task = self.script.task(run.task)
    if task is None:
        return ()
    if run.part == "exit":
        return task.trigger.on_exit if isinstance(task.trigger, While) else ()
    return task.actions


def drive(self: Engine, run: TaskRun, now: float, eff: list[Effect]) -> None:
    """Carry a sequence on from where it is, up to a wait, a command in flight, a boundary or its end."""
    actions = actions_of(self, run)
    origin = f"task:{run.task}"
    while run.id in self.runs and not self.final:
        if run.command is not None:
            return
        if run.ending:  # its task changed while a command was in flight: that action was the last
            del self.runs[run.id]
            return
        if run.wait_until is not None:
            if run.wait_until > now:
                return
            run.wait_until = None
            run.index += 1
        if run.index >= len(actions):
            finish_run(self, run, now)
            return
        if self._blocked():
            return
        action = actions[run.index]
        if isinstance(action, SendCommand):
            c = self._command(action.unit, action.module, action.cmd, action.args, "task", str(run.id),
                              origin)
            run.command = {"effect_id": c.effect_id, "unit": c.unit, "module": c.module, "cmd": c.cmd,
                           "args": dict(c.args), "origin": c.origin}
            eff.append(c)
            return
        run.index += 1
        if isinstance(action, Wait):
            run.index -= 1  # a wait is done when its time has passed
            run.wait_until = now + action.seconds
        elif isinstance(action, Log):
            eff.append(LogEffect(action.level, "log", format_log(self, action), origin))
        elif isinstance(action, SetVariable):
            value = self.values.value(action.value)
            if value is None:
                eff.append(LogEffect("warning", "set_failed", f"{action.name} not set: "
                                     f"{action.value.text!r} has no value now", origin))
            elif self.values.variables.get(action.name) != value:
                self.values.variables[action.name] = value
                self._react({action.name}, now, eff)
        elif isinstance(action, SessionAction):
            eff.append(SessionEffect(action.action, action.unit, action.name, origin))
        elif isinstance(action, RunControl):
            if action.action == "stop":
                self._stop(now, f"stopped by task {run.task}", eff, "stopped")
                return
            eff.extend(self.pause(now))


def finish_run(self: Engine, run: TaskRun, now: float) -> None:
    del self.runs[run.id]
    if run.part != "do":
        return
    for task in self.script.tasks:
        trig = task.trigger
        if isinstance(trig, After) and trig.task == run.task:
            st = self.tasks[task.name]
            st.dues = sorted(st.dues + [now + trig.delay])


def format_log(self: Engine, action: Log) -> str:
    out = []
    for part in action.parts:
        if isinstance(part, str):
            out.append(part)
        else:
            value = self.values.value(part)
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            out.append("?" if value is None else text)
    return "".join(out)
