"""The experiment controller's engine: a pure, synchronous state machine over a checked Script.

Inputs are readings, events, unit presence, command outcomes and time (`now`,
UTC epoch seconds, always passed in); outputs are lists of effects
(hub.controller.effects). No I/O, no clock, no asyncio: the runner does that.

Rules a user can rely on (docs/scripts.md repeats them):
- A `when` is evaluated when a name it reads changes (not by polling), fires
  on false->true, with `for` only after it held that long; it re-arms when false.
- Stale readings (older than stale_after) have no value: a condition reading
  one is not true, a loop does not act on it, a guard reading one holds.
- Held (a guard holds) or paused: tasks do not start and running sequences
  stop at their next action boundary (a command in flight finishes); timers
  keep their due times and a task that fell due meanwhile fires ONCE at
  release (a `when` only if still true). Held: loops do not actuate and the
  guards' outputs are sent; at release the loops' and tasks' wanted outputs
  are re-applied. Paused: loops keep regulating.
- After a restart (`resume`) the same rule: a timed task due while the hub
  was down fires once; an `at` that fired never fires again; a sequence
  resumes after the last action whose outcome was recorded, and a command in
  flight is re-sent with the SAME id (the unit answers it from its duplicate
  detection instead of running it twice).
- Stopped or finished: every output the script touched goes off, a module
  busy with a pulse, run or dose by ABORT (hub.controller.switch_off).

The work is done in modules of one job each (docs/controller.md lists them);
this class is the interface and holds the state they share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from hub.controller import index, loop_control, outputs, reactions, sequences, snapshot, switch_off, timing
from hub.controller import status as status_report
from hub.controller.conditions import Values, unit_of
from hub.controller.diff import ScriptDiff, compare
from hub.controller.effects import CommandEffect, Effect, LogEffect, Outcome, Reading
from hub.controller.loops import OnOffState, PidState
from hub.controller.signals import SignalWindow
from hub.controller.tasks import TaskRun, TaskState
from hub.controller.timers import every_next
from hub.script.model import After, At, Every, Loop, OnOffLoop, PidLoop, Script, Task, Value


class Engine:
    """The run of one script: feed it inputs with the time they happen; it returns what to do."""

    def __init__(self, script: Script, *, run_id: str, started_at: float,
                 snapshot: Mapping[str, Any] | None = None) -> None:
        self.script = script
        self.run_id = run_id
        self.started_at = started_at
        self.version = 1
        self.values = Values(started_at, script.stale_after_s)
        self.values.variables = dict(script.variables)
        self.tasks: dict[str, TaskState] = {}
        self.runs: dict[int, TaskRun] = {}
        self.onoff: dict[str, OnOffState] = {}
        self.pid: dict[str, PidState] = {}
        self.windows: dict[str, SignalWindow] = {}
        self.holding: dict[str, str] = {}  # guard name -> why it holds
        self.guards_alarmed: set[str] = set()  # holding guards whose hold was raised as an alarm
        self.stale: set[str] = set()  # reading names in a staleness episode (warned once)
        self.touched: set[tuple[str, str]] = set()
        self.task_outputs: dict[tuple[str, str], tuple[str, dict[str, Value]]] = {}
        self.pending: dict[str, tuple[str, str]] = {}  # effect id -> (kind, task run id or name)
        self.inflight: dict[str, tuple[str, str]] = {}  # effect id -> (unit, module) of a long command
        self.switching: dict[str, switch_off.Switching] = {}  # effect id -> an output's way to off
        self.aborted: set[str] = set()  # long commands an ABORT of ours ends: their failure is expected
        self.counter = 0
        self.run_counter = 0
        self.paused = False
        self.final: str | None = None  # "stopped" | "finished"
        self.started = False
        self.pending_apply: tuple[Script, int, str] | None = None
        self.retired: dict[str, tuple[str, dict[str, Any]]] = {}  # removed task -> (trigger key, state)
        self._index()
        if snapshot is not None:
            self._restore(snapshot)

    # --- the interface ------------------------------------------------------

    @property
    def state(self) -> str:
        if self.final:
            return self.final
        if not self.started:
            return "ready"
        if self.paused:
            return "paused"
        return "held" if self.holding else "running"

    def start(self, now: float) -> list[Effect]:
        """Begin the run at `started_at` (timers count from there)."""
        self.started = True
        self.values.now = now
        for task in self.script.tasks:
            self.tasks[task.name] = self._new_task_state(task, now)
        for lp in self.script.loops:
            self._new_loop(lp)
        for sig in self.script.signals:
            self.windows[sig.name] = SignalWindow(sig)
        eff: list[Effect] = [LogEffect("info", "run_started", f"experiment {self.script.experiment} started "
                                       f"(version {self.version})", "engine", {"run_id": self.run_id})]
        self._eval_guards(now, eff)
        self._settle(now, eff)
        return eff

    def resume(self, now: float) -> list[Effect]:
        """Carry on from the snapshot: re-send commands in flight (same ids), re-apply wanted outputs,
        fire once what fell due meanwhile."""
        self.started = True
        self.values.now = now
        eff: list[Effect] = [LogEffect("info", "run_resumed", f"experiment {self.script.experiment} resumed "
                                       f"(version {self.version})", "engine", {"run_id": self.run_id})]
        if self.final:
            return eff
        for run in self.runs.values():
            if run.command is not None:
                c = run.command
                self.pending[c["effect_id"]] = ("task", str(run.id))
                if c["module"] is not None and c["cmd"] in switch_off.LONG_COMMANDS:
                    self.inflight[c["effect_id"]] = (c["unit"], c["module"])
                eff.append(CommandEffect(c["effect_id"], c["unit"], c["module"], c["cmd"], dict(c["args"]),
                                         c["origin"]))
        for st in self.pid.values():
            st.resumed(now, loop_control.RESUME_MARGIN_S)  # dt must not span the gap; pulses sent before
        self._eval_guards(now, eff)
        if not self.holding:
            eff.extend(self.wanted_outputs())
        self._settle(now, eff)
        return eff

    def on_reading(self, reading: Reading, now: float) -> list[Effect]:
        self.values.now = now
        eff: list[Effect] = []
        if self.final:
            return eff
        changed = reactions.take_reading(self, reading, now, eff)
        if changed:
            reactions.react(self, changed, now, eff)
            if not self.ix.loop_inputs.isdisjoint(changed):
                for lp in self.script.loops:
                    if lp.input in changed:
                        self._loop_input(lp, now, eff)
        timing.settle(self, now, eff)
        return eff

    def on_event(self, unit: str, module: str | None, code: str, now: float) -> list[Effect]:
        self.values.now = now
        eff: list[Effect] = []
        for task in self.script.tasks:
            trig = task.trigger
            if isinstance(trig, After) and trig.event == code and not self.final:
                self.tasks[task.name].dues = sorted(self.tasks[task.name].dues + [now + trig.delay])
        self._settle(now, eff)
        return eff

    def on_unit_online(self, unit: str, online: bool, now: float) -> list[Effect]:
        self.values.now = now
        if self.values.online.get(unit, True) == online:
            return []
        self.values.online[unit] = online
        code = "unit_online" if online else "unit_lost"
        eff: list[Effect] = [LogEffect("info" if online else "alarm", code,
                                       f"unit {unit} {'back online' if online else 'offline'}", "engine",
                                       {"unit": unit})]
        # online("u") in an expression names no reading: re-read every guard and condition
        self._eval_guards(now, eff)
        for task in self.script.tasks:
            self._eval_condition(task, now)
        self._settle(now, eff)
        return eff

    def on_outcome(self, effect_id: str, outcome: Outcome, now: float) -> list[Effect]:
        self.values.now = now
        eff: list[Effect] = []
        ref = self.pending.pop(effect_id, None)
        self.inflight.pop(effect_id, None)
        aborted = effect_id in self.aborted
        self.aborted.discard(effect_id)
        if ref is None:
            return eff  # an answer to something we no longer wait for
        kind, name = ref
        if switch_off.answered(self, effect_id, outcome, eff):
            self._settle(now, eff)
            return eff
        if not outcome.ok and aborted:
            eff.append(LogEffect("info", "command_aborted", f"command {effect_id} ({kind} {name}) ended by "
                                 "ABORT: its output is off", f"{kind}:{name}", {"status": outcome.status}))
        elif not outcome.ok:
            level: Literal["alarm", "warning"] = "alarm" if kind in ("task", "stop") else "warning"
            why = (outcome.error or {}).get("message", "")
            eff.append(LogEffect(level, "command_failed", f"command {effect_id} ({kind} {name}) "
                                 f"{outcome.status}: {why}", f"{kind}:{name}",
                                 {"status": outcome.status, "error": dict(outcome.error or {})}))
        if kind == "task":
            run = self.runs.get(int(name))
            if run is not None and run.command is not None and run.command["effect_id"] == effect_id:
                run.command = None
                run.index += 1
                if not outcome.ok and not aborted and self.script.on_error == "stop":
                    self._stop(now, f"a command of task {run.task} {outcome.status}", eff, "stopped")
                    return eff
                if not outcome.ok and not aborted and self.script.on_error == "pause":
                    eff.extend(self.pause(now))
                sequences.drive(self, run, now, eff)
        elif kind == "loop" and not outcome.ok and name in self.onoff:
            self.onoff[name].on = None  # unknown now: the next decision sends again
        self._settle(now, eff)
        return eff

    def advance(self, now: float) -> list[Effect]:
        self.values.now = now
        eff: list[Effect] = []
        self._settle(now, eff)
        return eff

    def next_due(self) -> float | None:
        """When `advance` next has something to do (None: only inputs can change anything)."""
        return timing.next_due(self)

    def pause(self, now: float) -> list[Effect]:
        """Pause at the next task boundary: running sequences finish their current action."""
        if self.final or self.paused:
            return []
        self.paused = True
        return [LogEffect("info", "paused", "experiment paused (sequences stop after their current action)",
                          "engine")]

    def resume_run(self, now: float) -> list[Effect]:
        self.values.now = now
        if self.final or not self.paused:
            return []
        self.paused = False
        eff: list[Effect] = [LogEffect("info", "resumed", "experiment resumed", "engine")]
        self._settle(now, eff)
        return eff

    def stop(self, now: float, reason: str) -> list[Effect]:
        eff: list[Effect] = []
        self._stop(now, reason, eff, "stopped")
        return eff

    def apply(self, new_script: Script, now: float, author: str) -> tuple[list[Effect], ScriptDiff]:
        """Take a new (already checked) version: it runs from now. The boundary is per task: a run of a
        changed or removed task that has a command in flight finishes that action (its answer is
        awaited) and then ends; every other run carries on, or ends at once if the task changed."""
        version = (self.pending_apply[1] if self.pending_apply is not None else self.version) + 1
        diff = compare(self.script, new_script, version)
        eff: list[Effect] = []
        if self.final:
            return eff, diff
        self.pending_apply = (new_script, version, author)
        self._settle(now, eff)
        return eff, diff

    def wanted_outputs(self) -> list[CommandEffect]:
        """The outputs the script wants now: loops' and tasks' on/off state, or the guards' while held."""
        return outputs.wanted_outputs(self)

    def snapshot(self) -> dict[str, Any]:
        return snapshot.dump(self)

    def status(self, now: float) -> dict[str, Any]:
        return status_report.status(self, now)

    # --- internals, shared with the modules that do the work --------------------

    def _index(self) -> None:
        """Which items depend on which names (rebuilt with each script version)."""
        self.ix = index.build(self.script)
        self.timed_checked_at: float | None = None
        self.stale_heap: list[tuple[float, str]] = []
        reactions.rebuild_stale_heap(self)
        self.wake_key: tuple[int, int, int, int] | None = None  # what `timing.task_wake` was computed for
        self.wake: tuple[float | None, float | None, bool] = (None, None, False)
        self.status_key: tuple[Any, ...] | None = None  # what `status_tasks` was read for
        self.status_tasks: tuple[list[dict[str, Any]], dict[str, int]] = ([], {})

    def _new_task_state(self, task: Task, now: float) -> TaskState:
        trig = task.trigger
        st = TaskState()
        if isinstance(trig, At):
            st.dues = [self.started_at + trig.elapsed]
        elif isinstance(trig, Every):
            begun = now > self.started_at + trig.start
            nxt = every_next(trig, self.started_at, now - 1e-9 if begun else None)
            st.dues = [nxt] if nxt is not None else []
            st.done = nxt is None
        return st

    def _new_loop(self, lp: Loop) -> None:
        if isinstance(lp, OnOffLoop):
            self.onoff[lp.name] = OnOffState()
        else:
            self.pid[lp.name] = PidState(next_pulse=self.values.now if lp.period_s > 0 else None)

    def _blocked(self) -> bool:
        return bool(self.final) or self.paused or bool(self.holding) or not self.started

    def _react(self, changed: set[str], now: float, eff: list[Effect]) -> None:
        reactions.react(self, changed, now, eff)

    def _eval_condition(self, task: Task, now: float) -> None:
        reactions.eval_condition(self, task, now)

    def _eval_guards(self, now: float, eff: list[Effect]) -> None:
        reactions.eval_guards(self, now, eff)

    def _settle(self, now: float, eff: list[Effect]) -> None:
        timing.settle(self, now, eff)

    def _command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value], kind: str,
                 ref: str, origin: str | None = None) -> CommandEffect:
        return outputs.command(self, unit, module, cmd, args, kind, ref, origin)

    def _speed_command(self, lp: PidLoop, output: float) -> CommandEffect:
        return loop_control.speed_command(self, lp, output)

    def _loop_input(self, lp: Loop, now: float, eff: list[Effect]) -> None:
        loop_control.loop_input(self, lp, now, eff)

    def _loop_timers(self, now: float, eff: list[Effect]) -> None:
        loop_control.loop_timers(self, now, eff)

    def _stop(self, now: float, reason: str, eff: list[Effect], final: str) -> None:
        outputs.stop(self, now, reason, eff, final)

    def _restore(self, data: Mapping[str, Any]) -> None:
        snapshot.load(self, data)
        self.values.stale_after_s = self.script.stale_after_s
        self._index()


__all__ = ["Engine", "ScriptDiff", "unit_of"]
