"""A new script version taking over a running engine, item by item, keyed by name.

What a change keeps and what it resets (docs/scripts.md repeats this):
- unchanged items keep everything: timers, fired counts, condition state,
  pending `for` timers, loop states (PID integral!), signal windows;
- a task whose trigger is unchanged (only its actions changed) keeps its
  timers and counts; its running sequence, if any, ends at its boundary (at
  once, or after the answer to its command in flight) and the next firing runs
  the new actions; everything else takes effect at once;
- a task whose trigger changed gets a new schedule (an `every` on the new grid
  from the run's start, an `at` that already fired stays fired, a `when`
  starts from false so it fires if its condition holds); its fired count is kept;
- a loop whose kind, input and output are unchanged keeps its state (a new
  setpoint or new gains take over bumplessly); otherwise it is rebuilt, and
  an output it no longer drives is turned off;
- a removed task ends (its sequence stops; added again later with the same
  trigger it carries on with its old counts, so an `at` never fires twice), a removed loop turns its output
  off, a removed guard stops holding, a changed signal restarts its window;
- a variable whose initial value changed takes the new value; others keep theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.controller import switch_off
from hub.controller.diff import compare, key
from hub.controller.effects import Effect, LogEffect
from hub.controller.signals import SignalWindow
from hub.controller.tasks import TaskState
from hub.script.model import At, Script

if TYPE_CHECKING:
    from hub.controller.engine import Engine


def apply(engine: Engine, new: Script, version: int, author: str, now: float, eff: list[Effect]) -> None:
    old = engine.script
    diff = compare(old, new, version)
    changed = set(diff.changed)
    removed = set(diff.removed)

    old_tasks = {t.name: t for t in old.tasks}
    for name in list(engine.tasks):
        task = new.task(name)
        if task is None or f"task:{name}" in changed:
            for run in [r for r in engine.runs.values() if r.task == name]:
                if run.command is None:
                    del engine.runs[run.id]
                else:  # its current action finishes (the answer is awaited), then the run ends
                    run.ending = True
        if task is None:
            # kept by trigger: a task removed and added again later does not fire its `at` twice
            engine.retired[name] = (repr(key(old_tasks[name].trigger)), engine.tasks.pop(name).to_json())
        elif f"task:{name}" in changed and key(task.trigger) != key(old_tasks[name].trigger):
            before = engine.tasks[name]
            fresh = engine._new_task_state(task, now)
            fresh.fired, fresh.last_fired = before.fired, before.last_fired
            if isinstance(task.trigger, At) and isinstance(old_tasks[name].trigger, At) and before.done:
                fresh.done, fresh.dues = True, []
            engine.tasks[name] = fresh
    for task in new.tasks:
        if task.name not in engine.tasks:
            back = engine.retired.pop(task.name, None)
            if back is not None and back[0] == repr(key(task.trigger)):
                engine.tasks[task.name] = TaskState.from_json(back[1])
            else:
                engine.tasks[task.name] = engine._new_task_state(task, now) if engine.started else TaskState()

    old_loops = {lp.name: lp for lp in old.loops}
    new_loops = {lp.name: lp for lp in new.loops}
    outputs_now = {lp.output for lp in new.loops}
    for name, lp in old_loops.items():
        nl = new_loops.get(name)
        same = nl is not None and type(nl) is type(lp) and nl.input == lp.input and nl.output == lp.output
        if not same:
            engine.onoff.pop(name, None)
            engine.pid.pop(name, None)
            if lp.output not in outputs_now:
                off = switch_off.turn_off(engine, *lp.output, "loop", name, own_only=True)
                if off is not None:
                    eff.append(off)
    for name, nl in new_loops.items():
        if name not in engine.onoff and name not in engine.pid:
            engine._new_loop(nl)

    for sig in new.signals:
        if sig.name not in engine.windows or f"signal:{sig.name}" in changed:
            engine.windows[sig.name] = SignalWindow(sig)
            engine.values.signals.pop(sig.name, None)
        else:
            engine.windows[sig.name].signal = sig
    for name in [n for n in engine.windows if f"signal:{n}" in removed]:
        del engine.windows[name]
        engine.values.signals.pop(name, None)

    for name in old.variables:
        if f"variable:{name}" in removed:
            engine.values.variables.pop(name, None)
    for name, value in new.variables.items():
        if f"variable:{name}" in changed or name not in old.variables:
            engine.values.variables[name] = value

    was_held = bool(engine.holding)
    for name in [g for g in engine.holding if f"guard:{g}" in removed or f"guard:{g}" in changed]:
        del engine.holding[name]  # a changed guard is evaluated afresh below
        engine.guards_alarmed.discard(name)

    engine.script = new
    engine.version = version
    engine.values.stale_after_s = new.stale_after_s
    engine._index()
    eff.append(LogEffect("info", "script_applied", f"script version {version} by {author} running: "
                         f"added {list(diff.added)}, removed {list(diff.removed)}, "
                         f"changed {list(diff.changed)}",
                         "engine", diff.to_json() | {"author": author}))
    # Everything re-reads its names under the new version; items kept keep their edge state.
    for task in new.tasks:
        if f"task:{task.name}" in changed or f"task:{task.name}" not in {f"task:{t}" for t in old_tasks}:
            engine._eval_condition(task, now)
    holding_left = bool(engine.holding)
    engine._eval_guards(now, eff)  # releases what it saw holding itself
    if was_held and not holding_left and not engine.holding:
        for st in engine.pid.values():
            st.restart()
        eff.extend(engine.wanted_outputs())
