"""Which items of a script read which names: rebuilt with each script version.

The engine evaluates a condition only when a name it reads changes, so it
needs the reverse map name -> items; conditions that change with time alone
(`t`, `age()`) are listed apart, and every reading a condition, loop or
signal reads is watched for staleness. The items a name reaches are kept in
script order, ready to run, so a reading nothing reads costs one dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.controller.guards import guard_units
from hub.script.model import Loop, OnOffLoop, PidLoop, Script, Task, When, While


@dataclass(frozen=True)
class Reach:
    """What a change of one name (or of several, merged) re-reads, in the order the engine does it."""

    guards: bool = False  # any guard: every guard is re-read then
    tasks: tuple[Task, ...] = ()  # `when`/`while` tasks, in script order
    loops: tuple[Loop, ...] = ()  # loops whose `enabled` reads it, in script order


@dataclass
class Index:
    signals_of: dict[str, list[str]] = field(default_factory=dict)  # reading -> signals derived from it
    deps: dict[str, set[str]] = field(default_factory=dict)  # name -> "task:X" / "guard:X" / "loop:X"
    timed: list[str] = field(default_factory=list)  # items whose condition changes with time alone
    monitored: set[str] = field(default_factory=set)  # readings watched for staleness
    reach: dict[str, Reach] = field(default_factory=dict)  # name -> what it re-reads (from deps)
    timed_guards: bool = False  # `timed` holds a guard
    timed_tasks: tuple[Task, ...] = ()  # the tasks of `timed`, in script order
    timed_loops: tuple[Loop, ...] = ()  # the loops of `timed`, in script order
    loop_inputs: frozenset[str] = frozenset()  # names some loop takes as its input
    onoff_loops: tuple[OnOffLoop, ...] = ()
    pulse_loops: tuple[PidLoop, ...] = ()  # PID loops with a period (time-proportioning)
    guard_units: dict[str, tuple[str, ...]] = field(default_factory=dict)  # guard -> units it reads, sorted

    tasks_in_order: tuple[Task, ...] = ()  # the script's, for merging several names' reach
    loops_in_order: tuple[Loop, ...] = ()

    def reach_of(self, names: set[str]) -> Reach | None:
        """What a change of `names` re-reads (None: nothing)."""
        if len(names) == 1:
            for name in names:
                return self.reach.get(name)
        found = [r for r in (self.reach.get(n) for n in names) if r is not None]
        if len(found) <= 1:
            return found[0] if found else None
        tasks = {id(t) for r in found for t in r.tasks}
        loops = {id(lp) for r in found for lp in r.loops}
        return Reach(any(r.guards for r in found),
                     tuple(t for t in self.tasks_in_order if id(t) in tasks),
                     tuple(lp for lp in self.loops_in_order if id(lp) in loops))


def build(script: Script) -> Index:
    ix = Index()
    for sig in script.signals:
        ix.signals_of.setdefault(sig.source, []).append(sig.name)
    for task in script.tasks:
        trig = task.trigger
        if isinstance(trig, When | While):
            for n in trig.condition.names:
                ix.deps.setdefault(n, set()).add(f"task:{task.name}")
    for guard in script.guards:
        for n in guard.condition.names:
            ix.deps.setdefault(n, set()).add(f"guard:{guard.name}")
        for u in guard_units(guard):
            ix.deps.setdefault(f"unit:{u}", set()).add(f"guard:{guard.name}")
        ix.guard_units[guard.name] = tuple(sorted(guard_units(guard)))
    ix.timed = [f"task:{t.name}" for t in script.tasks
                if isinstance(t.trigger, When | While) and t.trigger.condition.timed]
    ix.timed += [f"guard:{g.name}" for g in script.guards if g.condition.timed]
    ix.timed += [f"loop:{lp.name}" for lp in script.loops if lp.enabled is not None and lp.enabled.timed]
    for n in ix.deps:
        if "/" in n and not n.startswith("unit:"):
            ix.monitored.add(n)
    for lp in script.loops:
        if "/" in lp.input:
            ix.monitored.add(lp.input)
        if lp.enabled is not None:
            for n in lp.enabled.names:
                ix.deps.setdefault(n, set()).add(f"loop:{lp.name}")
    for sig in script.signals:
        ix.monitored.add(sig.source)
    ix.tasks_in_order, ix.loops_in_order = script.tasks, script.loops
    for name, items in ix.deps.items():
        ix.reach[name] = Reach(any(i.startswith("guard:") for i in items),
                               tuple(t for t in script.tasks if f"task:{t.name}" in items),
                               tuple(lp for lp in script.loops if f"loop:{lp.name}" in items))
    timed = set(ix.timed)
    ix.timed_guards = any(i.startswith("guard:") for i in timed)
    ix.timed_tasks = tuple(t for t in script.tasks if f"task:{t.name}" in timed)
    ix.timed_loops = tuple(lp for lp in script.loops if f"loop:{lp.name}" in timed)
    ix.loop_inputs = frozenset(lp.input for lp in script.loops)
    ix.onoff_loops = tuple(lp for lp in script.loops if isinstance(lp, OnOffLoop))
    ix.pulse_loops = tuple(lp for lp in script.loops if isinstance(lp, PidLoop) and lp.period_s > 0)
    return ix
