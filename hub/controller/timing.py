"""What falls due with time alone: the end of the run, staleness deadlines, timers, sequences, edits.

`settle` does, in order, everything due at `now`; `next_due` says when that
next has something to do, so the runner sleeps until then (or an input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.controller import hotedit, reactions, sequences, tasks
from hub.controller.effects import Effect
from hub.script.model import When

if TYPE_CHECKING:
    from hub.controller.engine import Engine

STALE_EPSILON = 0.001  # staleness is "older than": look just past the deadline
# A condition whose value changes with time alone (`t`, age()) has no input to wake it: it is
# re-evaluated this often. Everything else is evaluated only when a name it reads changes.
TIMED_RECHECK_S = 1.0


def next_due(engine: Engine) -> float | None:
    """When `settle` next has something to do (None: only inputs can change anything)."""
    if engine.final or not engine.started:
        return None
    times: list[float] = []
    if engine.script.duration_s is not None:
        times.append(engine.started_at + engine.script.duration_s)
    stale = reactions.earliest_stale(engine)
    if stale is not None:
        times.append(stale + STALE_EPSILON)
    if engine.ix.timed and engine.timed_checked_at is not None:
        times.append(engine.timed_checked_at + TIMED_RECHECK_S)
    if engine.runs:
        for run in engine.runs.values():
            if run.wait_until is not None:
                times.append(run.wait_until)
        busy = {r.task for r in engine.runs.values()}
        for task in engine.script.tasks:
            st = engine.tasks[task.name]
            if st.hold_until is not None:
                times.append(st.hold_until)
            if not engine._blocked() and not st.done and task.name not in busy and st.dues:
                times.append(st.dues[0])
    else:  # nothing runs, so no task is busy: the earliest of the tasks' times will do
        hold, due, _ = task_wake(engine)
        if hold is not None:
            times.append(hold)
        if due is not None and not engine._blocked():
            times.append(due)
    if not engine.holding:
        ix = engine.ix
        for onoff in ix.onoff_loops:
            recheck = engine.onoff[onoff.name].recheck_at
            if recheck is not None:
                times.append(recheck)
        for pid in ix.pulse_loops:
            ps = engine.pid[pid.name]
            if ps.next_pulse is not None:
                times.append(ps.next_pulse)
            waiting = ps.owed_from is not None and ps.busy_until is not None
            if waiting and ps.busy_until is not None and ps.busy_until > engine.values.now:
                times.append(ps.busy_until)  # a pulse from before a restart may run until then
    return min(times) if times else None


def task_wake(engine: Engine) -> tuple[float | None, float | None, bool]:
    """Over the script's tasks: the earliest `for` hold end, the earliest due time of a task not done,
    and whether an `on_exit` waits. Re-read only after a task's times changed (tasks.changes)."""
    key = (tasks.changes, id(engine.tasks), len(engine.tasks), id(engine.script))
    if key != engine.wake_key:
        holds: list[float] = []
        dues: list[float] = []
        exit_pending = False
        for task in engine.script.tasks:
            st = engine.tasks[task.name]
            if st.hold_until is not None:
                holds.append(st.hold_until)
            if not st.done and st.dues:
                dues.append(st.dues[0])
            exit_pending = exit_pending or st.exit_pending
        engine.wake = (min(holds) if holds else None, min(dues) if dues else None, exit_pending)
        engine.wake_key = key
    return engine.wake


def settle(engine: Engine, now: float, eff: list[Effect]) -> None:
    """Everything that is due at `now`, in order: end of run, staleness, timers, sequences, edits."""
    if engine.final or not engine.started:
        return
    if engine.script.duration_s is not None and now >= engine.started_at + engine.script.duration_s:
        engine._stop(now, "duration reached", eff, "finished")
        return
    reactions.check_stale(engine, now, eff)
    last = engine.timed_checked_at
    ix = engine.ix
    if ix.timed and (last is None or now >= last + TIMED_RECHECK_S):
        engine.timed_checked_at = now
        if ix.timed_guards:
            reactions.eval_guards(engine, now, eff)
        for task in ix.timed_tasks:
            reactions.eval_condition(engine, task, now)
        for lp in ix.timed_loops:
            engine._loop_input(lp, now, eff)
    hold = task_wake(engine)[0]
    if hold is not None and hold <= now:
        for task in engine.script.tasks:
            st = engine.tasks[task.name]
            if st.hold_until is not None and st.hold_until <= now:
                st.hold_until = None
                assert isinstance(task.trigger, When)
                if engine.values.truth(task.trigger.condition):
                    st.dues = [now]
                else:
                    st.truth = False
    if engine.script.loops:
        engine._loop_timers(now, eff)
    if engine.runs:
        for run in list(engine.runs.values()):
            if run.command is None:  # a run waiting for its command's answer has nothing to do yet
                sequences.drive(engine, run, now, eff)
    _, due, exit_pending = task_wake(engine)
    if exit_pending or (due is not None and due <= now):
        sequences.fire_dues(engine, now, eff)
    if engine.pending_apply is not None and not engine.final:
        new, version, author = engine.pending_apply
        engine.pending_apply = None
        hotedit.apply(engine, new, version, author, now, eff)
        settle(engine, now, eff)
