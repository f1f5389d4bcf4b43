"""Which items of a script read which names: rebuilt with each script version.

The engine evaluates a condition only when a name it reads changes, so it
needs the reverse map name -> items; conditions that change with time alone
(`t`, `age()`) are listed apart, and every reading a condition, loop or
signal reads is watched for staleness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.controller.guards import guard_units
from hub.script.model import Script, When, While


@dataclass
class Index:
    signals_of: dict[str, list[str]] = field(default_factory=dict)  # reading -> signals derived from it
    deps: dict[str, set[str]] = field(default_factory=dict)  # name -> "task:X" / "guard:X" / "loop:X"
    timed: list[str] = field(default_factory=list)  # items whose condition changes with time alone
    monitored: set[str] = field(default_factory=set)  # readings watched for staleness


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
    return ix
