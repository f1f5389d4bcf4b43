"""The engine's state as JSON, and back: everything needed to resume a run exactly.

Kept: version, start time, per-task fired counts, due times and condition
state (an edge already seen does not fire again), pending `for` timers,
sequence positions with the command in flight (re-sent with the same id),
loop states (PID integral, last output; ON/OFF state and last change),
variables, signal windows, last readings, guards holding, staleness episodes,
the outputs the script touched. Not kept: answers awaited for loop and guard
commands (their outputs are re-applied on resume instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.controller.loops import OnOffState, PidState
from hub.controller.signals import SignalWindow
from hub.controller.tasks import TaskRun, TaskState
from lecis.errors import LabedgeError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hub.controller.engine import Engine

FORMAT = 1


class SnapshotInvalid(LabedgeError, ValueError):
    """A saved controller state that cannot be resumed from; the message names the field."""


def dump(engine: Engine) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "run_id": engine.run_id,
        "started_at": engine.started_at,
        "version": engine.version,
        "started": engine.started,
        "paused": engine.paused,
        "final": engine.final,
        "counter": engine.counter,
        "run_counter": engine.run_counter,
        "variables": dict(engine.values.variables),
        "tasks": {name: st.to_json() for name, st in engine.tasks.items()},
        "retired": {name: [trigger, st] for name, (trigger, st) in engine.retired.items()},
        "runs": [run.to_json() for run in engine.runs.values()],
        "onoff": {name: st.to_json() for name, st in engine.onoff.items()},
        "pid": {name: st.to_json() for name, st in engine.pid.items()},
        "signals": {name: [list(p) for p in w.points] for name, w in engine.windows.items()},
        "signal_values": {name: list(v) for name, v in engine.values.signals.items()},
        "readings": {name: list(v) for name, v in engine.values.readings.items()},
        "online": dict(engine.values.online),
        "holding": dict(engine.holding),
        "guards_alarmed": sorted(engine.guards_alarmed),
        "stale": sorted(engine.stale),
        "touched": sorted([u, m] for u, m in engine.touched),
        "task_outputs": [[u, m, cmd, args] for (u, m), (cmd, args) in sorted(engine.task_outputs.items())],
    }


def load(engine: Engine, data: Mapping[str, Any]) -> None:
    field = "format"
    try:
        if data.get("format") != FORMAT:
            raise SnapshotInvalid(f"controller state format {data.get('format')!r}, this hub reads {FORMAT}")
        field = "run_id"
        if data["run_id"] != engine.run_id:
            raise SnapshotInvalid(f"controller state is of run {data['run_id']!r}, not {engine.run_id!r}")
        for field in ("started_at", "version", "started", "paused", "final", "counter", "run_counter"):
            setattr(engine, field, data[field])
        engine.values.started_at = engine.started_at
        field = "variables"
        engine.values.variables = dict(data["variables"])
        field = "tasks"
        engine.tasks = {name: TaskState.from_json(st) for name, st in data["tasks"].items()}
        for task in engine.script.tasks:  # a task the saved state does not know starts fresh
            if task.name not in engine.tasks:
                engine.tasks[task.name] = engine._new_task_state(task, engine.started_at)
        field = "retired"
        retired = data.get("retired", {})
        engine.retired = {name: (trigger, dict(st)) for name, (trigger, st) in retired.items()}
        field = "runs"
        engine.runs = {r["id"]: TaskRun.from_json(r) for r in data["runs"]}
        field = "onoff"
        engine.onoff = {name: OnOffState(**st) for name, st in data["onoff"].items()}
        field = "pid"
        engine.pid = {name: PidState(**st) for name, st in data["pid"].items()}
        for lp in engine.script.loops:
            if lp.name not in engine.onoff and lp.name not in engine.pid:
                engine._new_loop(lp)
        field = "signals"
        engine.windows = {}
        for sig in engine.script.signals:
            points = [(p[0], p[1]) for p in data["signals"].get(sig.name, [])]
            engine.windows[sig.name] = SignalWindow(sig, points)
        field = "signal_values"
        engine.values.signals = {n: (v[0], v[1]) for n, v in data["signal_values"].items()}
        field = "readings"
        engine.values.readings = {n: (v[0], v[1]) for n, v in data["readings"].items()}
        field = "online"
        engine.values.online = dict(data["online"])
        field = "holding"
        engine.holding = dict(data["holding"])
        field = "guards_alarmed"  # a state saved before this field: every hold was an alarm
        engine.guards_alarmed = set(data.get("guards_alarmed", engine.holding))
        field = "stale"
        engine.stale = set(data["stale"])
        field = "touched"
        engine.touched = {(u, m) for u, m in data["touched"]}
        field = "task_outputs"
        engine.task_outputs = {(u, m): (cmd, dict(args)) for u, m, cmd, args in data["task_outputs"]}
    except SnapshotInvalid:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise SnapshotInvalid(f"controller state: field {field!r} unreadable ({type(exc).__name__}: {exc})") \
            from exc
