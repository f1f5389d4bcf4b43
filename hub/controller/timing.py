"""What falls due with time alone: the end of the run, staleness deadlines, timers, sequences, edits.

`settle` does, in order, everything due at `now`; `next_due` says when that
next has something to do, so the runner sleeps until then (or an input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.controller import hotedit, reactions, sequences
from hub.controller.effects import Effect
from hub.script.model import OnOffLoop, PidLoop, When

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
    times.extend(d + STALE_EPSILON for d in reactions.stale_deadlines(engine).values())
    if engine.ix.timed and engine.timed_checked_at is not None:
        times.append(engine.timed_checked_at + TIMED_RECHECK_S)
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
    if not engine.holding:
        for lp in engine.script.loops:
            if isinstance(lp, OnOffLoop) and engine.onoff[lp.name].recheck_at is not None:
                times.append(engine.onoff[lp.name].recheck_at or 0.0)
            if isinstance(lp, PidLoop) and lp.period_s > 0:
                ps = engine.pid[lp.name]
                if ps.next_pulse is not None:
                    times.append(ps.next_pulse)
                waiting = ps.owed_from is not None and ps.busy_until is not None
                if waiting and ps.busy_until is not None and ps.busy_until > engine.values.now:
                    times.append(ps.busy_until)  # a pulse from before a restart may run until then
    return min(times) if times else None


def settle(engine: Engine, now: float, eff: list[Effect]) -> None:
    """Everything that is due at `now`, in order: end of run, staleness, timers, sequences, edits."""
    if engine.final or not engine.started:
        return
    if engine.script.duration_s is not None and now >= engine.started_at + engine.script.duration_s:
        engine._stop(now, "duration reached", eff, "finished")
        return
    reactions.check_stale(engine, now, eff)
    last = engine.timed_checked_at
    if engine.ix.timed and (last is None or now >= last + TIMED_RECHECK_S):
        engine.timed_checked_at = now
        if any(item.startswith("guard:") for item in engine.ix.timed):
            reactions.eval_guards(engine, now, eff)
        for task in engine.script.tasks:
            if f"task:{task.name}" in engine.ix.timed:
                reactions.eval_condition(engine, task, now)
        for lp in engine.script.loops:
            if f"loop:{lp.name}" in engine.ix.timed:
                engine._loop_input(lp, now, eff)
    for task in engine.script.tasks:
        st = engine.tasks[task.name]
        if st.hold_until is not None and st.hold_until <= now:
            st.hold_until = None
            assert isinstance(task.trigger, When)
            if engine.values.truth(task.trigger.condition):
                st.dues = [now]
            else:
                st.truth = False
    engine._loop_timers(now, eff)
    for run in list(engine.runs.values()):
        sequences.drive(engine, run, now, eff)
    sequences.fire_dues(engine, now, eff)
    if engine.pending_apply is not None and not engine.final:
        new, version, author = engine.pending_apply
        engine.pending_apply = None
        hotedit.apply(engine, new, version, author, now, eff)
        settle(engine, now, eff)
