"""What the engine re-evaluates when names change: guards, task conditions, loops; readings going stale.

Guards come first (a hold blocks what follows), then `when`/`while`
conditions, then loops whose `enabled` reads a changed name. A reading older
than `stale_after` is detected at its deadline (a timer), not at the next
reading, and warned about once per staleness episode.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

from hub.controller import outputs
from hub.controller.effects import DerivedEffect, Effect, LogEffect, Reading
from hub.controller.guards import guard_holds, waiting_for
from hub.script.model import Task, When, While

if TYPE_CHECKING:
    from hub.controller.engine import Engine


def take_reading(engine: Engine, reading: Reading, now: float, eff: list[Effect]) -> set[str]:
    """Store a reading's values (and the signals derived from them); the names that changed and are fresh."""
    changed: set[str] = set()
    readings = engine.values.readings
    ix = engine.ix
    stale_after = engine.script.stale_after_s
    ts = reading.ts
    for key, raw in reading.values.items():
        name = f"{reading.unit}/{reading.module}.{key}"
        old = readings.get(name)
        if old is not None and ts <= old[1]:
            continue  # a repeat or an older reading never replaces a newer one
        if type(raw) is not float and (isinstance(raw, bool) or not isinstance(raw, int | float)):
            continue  # only finite numbers drive conditions and loops (a NaN would poison a PID)
        if not math.isfinite(raw):
            continue
        value = float(raw)
        readings[name] = (value, ts)
        if name in ix.monitored:
            heapq.heappush(engine.stale_heap, (ts + stale_after, name))
        sigs = ix.signals_of.get(name)
        if sigs is not None:
            for sig in sigs:
                derived = engine.windows[sig].add(ts, value)
                if derived is not None:
                    engine.values.signals[sig] = (derived, ts)
                    eff.append(DerivedEffect(sig, ts, derived))
                    changed.add(sig)
        if now - ts > stale_after:
            continue  # stale on arrival (a backlog): stored, never acted on as fresh
        if name in engine.stale:
            engine.stale.discard(name)
            eff.append(LogEffect("info", "reading_fresh", f"{name} is fresh again", "engine", {"name": name}))
        changed.add(name)
    return changed


def react(engine: Engine, changed: set[str], now: float, eff: list[Effect]) -> None:
    """Re-evaluate what reads the changed names: guards first (hold), then conditions, then loops."""
    if not changed or engine.final:
        return
    reach = engine.ix.reach_of(changed)
    if reach is None:
        return
    if reach.guards:
        eval_guards(engine, now, eff)
    for task in reach.tasks:
        eval_condition(engine, task, now)
    for lp in reach.loops:
        if lp.input not in changed:
            engine._loop_input(lp, now, eff)


def eval_condition(engine: Engine, task: Task, now: float) -> None:
    trig = task.trigger
    st = engine.tasks[task.name]
    if isinstance(trig, When):
        truth = engine.values.truth(trig.condition)
        if truth and not st.truth:
            if trig.for_s > 0:
                st.hold_until = now + trig.for_s
            else:
                st.dues = [now]
        elif not truth:
            if st.hold_until is not None:
                st.hold_until = None
            if st.dues:
                st.dues = []  # an edge not yet fired (held, busy) is forgotten when it turns false again
        if st.truth != truth:
            st.truth = truth
    elif isinstance(trig, While):
        truth = engine.values.truth(trig.condition)
        if truth and not st.inside:
            st.inside, st.dues, st.exit_pending = True, [now], False
        elif not truth and st.inside:
            st.inside, st.dues, st.exit_pending = False, [], bool(trig.on_exit)
        st.truth = truth


def eval_guards(engine: Engine, now: float, eff: list[Effect]) -> None:
    """Hold and release by the guards. A hold waiting for first readings is said once, as info; the
    `guard_hold` alarm is for a hold that means something (condition true, stale, unit offline)."""
    was_held = bool(engine.holding)
    signals = [sig.name for sig in engine.script.signals] if engine.script.signals else []
    waiting: dict[str, list[str]] = {}
    units = engine.ix.guard_units
    for guard in engine.script.guards:
        why = guard_holds(guard, engine.values, units.get(guard.name))
        if why is None:
            if guard.name in engine.holding:
                del engine.holding[guard.name]
                engine.guards_alarmed.discard(guard.name)
                eff.append(LogEffect("info", "guard_release", f"guard {guard.name} clear",
                                     f"guard:{guard.name}", {"guard": guard.name}))
            continue
        unseen = waiting_for(guard, engine.values, signals)
        entering = guard.name not in engine.holding
        engine.holding[guard.name] = f"waiting for first readings of {', '.join(unseen)}" if unseen else why
        if entering:
            eff.extend(outputs.guard_outputs(engine, guard))
            if unseen:
                waiting[guard.name] = unseen
        if not unseen and guard.name not in engine.guards_alarmed:
            engine.guards_alarmed.add(guard.name)
            eff.append(LogEffect("alarm", "guard_hold", f"held by guard {guard.name}: {why}",
                                 f"guard:{guard.name}", {"guard": guard.name, "reason": why}))
    if waiting:
        names = sorted({n for unseen in waiting.values() for n in unseen})
        eff.append(LogEffect("info", "guard_waiting", f"waiting for first readings of {', '.join(names)} "
                             f"(guards {', '.join(waiting)} hold until then)", "engine",
                             {"guards": list(waiting), "readings": names}))
    if was_held and not engine.holding and not engine.final:
        for st in engine.pid.values():
            st.restart()
        eff.extend(engine.wanted_outputs())


def stale_deadlines(engine: Engine) -> dict[str, float]:
    out = {}
    for name in engine.ix.monitored:
        if name in engine.stale:
            continue
        seen = engine.values.readings.get(name)
        out[name] = (seen[1] if seen else engine.started_at) + engine.script.stale_after_s
    return out


def rebuild_stale_heap(engine: Engine) -> None:
    """The staleness deadlines as a heap (after a new version or a restore): read in O(1) per reading."""
    engine.stale_heap = [(d, n) for n, d in stale_deadlines(engine).items()]
    heapq.heapify(engine.stale_heap)


def earliest_stale(engine: Engine) -> float | None:
    """The first of `stale_deadlines` (None: none). Each reading pushes its name's new deadline; an entry
    outdated by a newer reading, or of a name already stale, is dropped when it comes to the top."""
    heap = engine.stale_heap
    readings = engine.values.readings
    stale = engine.stale
    monitored = engine.ix.monitored
    after = engine.script.stale_after_s
    while heap:
        deadline, name = heap[0]
        if name in monitored and name not in stale:
            seen = readings.get(name)
            if deadline == (seen[1] if seen else engine.started_at) + after:
                return deadline
        heapq.heappop(heap)
    return None


def check_stale(engine: Engine, now: float, eff: list[Effect]) -> None:
    first = earliest_stale(engine)
    if first is None or not now - first > 0:
        return  # no deadline passed
    newly = {n for n, deadline in stale_deadlines(engine).items() if now - deadline > 0}
    for name in sorted(newly):
        engine.stale.add(name)
        seen = engine.values.readings.get(name)
        age = "never received" if seen is None else f"last {now - seen[1]:.1f} s ago"
        eff.append(LogEffect("warning", "stale_reading", f"{name} is stale ({age}; stale_after "
                             f"{engine.script.stale_after_s:g} s): not used until a fresh one arrives",
                             "engine", {"name": name}))
    changed = set(newly)
    for name in newly:
        changed.update(engine.ix.signals_of.get(name, ()))
    react(engine, changed, now, eff)
