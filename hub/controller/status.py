"""The engine's status for the hub's retained experiment state: what runs, what is due, loops, holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.controller import tasks
from hub.script.model import OnOffLoop, PidLoop

if TYPE_CHECKING:
    from hub.controller.engine import Engine


def status(engine: Engine, now: float) -> dict[str, Any]:
    due, fired = _tasks_part(engine)
    loops: dict[str, Any] = {}
    for lp in engine.script.loops:
        if isinstance(lp, OnOffLoop) and lp.name in engine.onoff:
            loops[lp.name] = {"kind": "onoff", "on": engine.onoff[lp.name].on,
                              "input": engine.values.fresh(lp.input)}
        elif isinstance(lp, PidLoop) and lp.name in engine.pid:
            loops[lp.name] = {"kind": "pid", "output": engine.pid[lp.name].output,
                              "input": engine.values.fresh(lp.input),
                              "setpoint": engine.values.value(lp.setpoint)}
    return {"state": engine.state, "run_id": engine.run_id, "experiment": engine.script.experiment,
            "version": engine.version, "started_at": engine.started_at, "elapsed": now - engine.started_at,
            "next_due": due, "loops": loops,
            "holding": [{"guard": g, "reason": r} for g, r in sorted(engine.holding.items())],
            "variables": dict(engine.values.variables),
            "fired": fired,
            "stale": sorted(engine.stale)}


def _tasks_part(engine: Engine) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """What is due next and the fired counts: re-read only after a task's times or counts changed
    (tasks.changes) or the running tasks did; copies, so a caller may keep or change them."""
    running = tuple(r.task for r in engine.runs.values()) if engine.runs else ()
    key = (tasks.changes, id(engine.tasks), len(engine.tasks), id(engine.script), running)
    if key != engine.status_key:
        due: list[dict[str, Any]] = []
        busy = set(running)
        for task in engine.script.tasks:
            st = engine.tasks.get(task.name)
            if st is not None and st.dues and not st.done:
                due.append({"task": task.name, "due": st.dues[0], "running": task.name in busy})
            elif st is not None and st.hold_until is not None:
                due.append({"task": task.name, "due": st.hold_until, "running": task.name in busy})
        due.sort(key=lambda d: d["due"])
        engine.status_tasks = (due[:10], {name: st.fired for name, st in engine.tasks.items()})
        engine.status_key = key
    due, fired = engine.status_tasks
    return [dict(d) for d in due], dict(fired)
