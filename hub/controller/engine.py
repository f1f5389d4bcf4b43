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
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from hub.controller import hotedit, loop_control, sequences, snapshot
from hub.controller.conditions import Values, unit_of
from hub.controller.diff import ScriptDiff, compare
from hub.controller.effects import (
    CommandEffect,
    DerivedEffect,
    Effect,
    LogEffect,
    Outcome,
    Reading,
)
from hub.controller.guards import guard_holds, guard_units
from hub.controller.loops import OnOffState, PidState
from hub.controller.signals import SignalWindow
from hub.controller.tasks import Part, TaskRun, TaskState
from hub.controller.timers import every_next
from hub.script.model import (
    After,
    At,
    Every,
    Loop,
    OnOffLoop,
    PidLoop,
    Script,
    Task,
    Value,
    When,
    While,
)

# Commands that leave an output running: `stop` turns every module that got one off again.
ON_COMMANDS = frozenset({"on", "pulse", "run", "dose"})
STATE_COMMANDS = frozenset({"on", "off"})  # re-applied after a hold or a restart; a dose never is
STALE_EPSILON = 0.001  # staleness is "older than": look just past the deadline
# A condition whose value changes with time alone (`t`, age()) has no input to wake it: it is
# re-evaluated this often. Everything else is evaluated only when a name it reads changes.
TIMED_RECHECK_S = 1.0


class Engine:
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
        self.stale: set[str] = set()  # reading names in a staleness episode (warned once)
        self.touched: set[tuple[str, str]] = set()
        self.task_outputs: dict[tuple[str, str], tuple[str, dict[str, Value]]] = {}
        self.pending: dict[str, tuple[str, str]] = {}  # effect id -> (kind, task run id or name)
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
                eff.append(CommandEffect(c["effect_id"], c["unit"], c["module"], c["cmd"], dict(c["args"]),
                                         c["origin"]))
        for st in self.pid.values():
            st.restart()  # dt must not span the gap
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
        changed: set[str] = set()
        for key, raw in reading.values.items():
            name = f"{reading.unit}/{reading.module}.{key}"
            old = self.values.readings.get(name)
            if old is not None and reading.ts <= old[1]:
                continue  # a repeat or an older reading never replaces a newer one
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
                continue  # only finite numbers drive conditions and loops (a NaN would poison a PID)
            value = float(raw)
            self.values.readings[name] = (value, reading.ts)
            for sig in self._signals_of.get(name, ()):
                derived = self.windows[sig].add(reading.ts, value)
                if derived is not None:
                    self.values.signals[sig] = (derived, reading.ts)
                    eff.append(DerivedEffect(sig, reading.ts, derived))
                    changed.add(sig)
            if now - reading.ts > self.script.stale_after_s:
                continue  # stale on arrival (a backlog): stored, never acted on as fresh
            if name in self.stale:
                self.stale.discard(name)
                eff.append(LogEffect("info", "reading_fresh", f"{name} is fresh again", "engine",
                                     {"name": name}))
            changed.add(name)
        self._react(changed, now, eff)
        for lp in self.script.loops:
            if lp.input in changed:
                self._loop_input(lp, now, eff)
        self._settle(now, eff)
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
        if ref is None:
            return eff  # an answer to something we no longer wait for
        kind, name = ref
        if not outcome.ok:
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
                if not outcome.ok and self.script.on_error == "stop":
                    self._stop(now, f"a command of task {run.task} {outcome.status}", eff, "stopped")
                    return eff
                if not outcome.ok and self.script.on_error == "pause":
                    eff.extend(self.pause(now))
                self._drive(run, now, eff)
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
        if self.final or not self.started:
            return None
        times: list[float] = []
        if self.script.duration_s is not None:
            times.append(self.started_at + self.script.duration_s)
        times.extend(d + STALE_EPSILON for d in self._stale_deadlines().values())
        if self._timed and self._timed_checked_at is not None:
            times.append(self._timed_checked_at + TIMED_RECHECK_S)
        for run in self.runs.values():
            if run.wait_until is not None:
                times.append(run.wait_until)
        busy = {r.task for r in self.runs.values()}
        for task in self.script.tasks:
            st = self.tasks[task.name]
            if st.hold_until is not None:
                times.append(st.hold_until)
            if not self._blocked() and not st.done and task.name not in busy and st.dues:
                times.append(st.dues[0])
        if not self.holding:
            for lp in self.script.loops:
                if isinstance(lp, OnOffLoop) and self.onoff[lp.name].recheck_at is not None:
                    times.append(self.onoff[lp.name].recheck_at or 0.0)
                if isinstance(lp, PidLoop) and lp.period_s > 0 and self.pid[lp.name].next_pulse is not None:
                    times.append(self.pid[lp.name].next_pulse or 0.0)
        return min(times) if times else None

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
        out: list[CommandEffect] = []
        if self.final:
            return out
        if self.holding:
            for guard in self.script.guards:
                if guard.name in self.holding:
                    out.extend(self._command(c.unit, c.module, c.cmd, c.args, "guard", guard.name)
                               for c in guard.outputs)
            return out
        covered: set[tuple[str, str]] = set()
        for lp in self.script.loops:
            covered.add(lp.output)
            if isinstance(lp, OnOffLoop) and self.onoff[lp.name].on is not None:
                cmd = "on" if self.onoff[lp.name].on else "off"
                out.append(self._command(*lp.output, cmd, {}, "loop", lp.name))
            elif isinstance(lp, PidLoop) and lp.period_s == 0 and self.pid[lp.name].output is not None:
                out.append(self._speed_command(lp, self.pid[lp.name].output or 0.0))
        for (unit, module), (cmd, args) in sorted(self.task_outputs.items()):
            if (unit, module) not in covered:
                out.append(self._command(unit, module, cmd, args, "reapply", f"{unit}/{module}",
                                         "task:outputs"))
        return out

    def snapshot(self) -> dict[str, Any]:
        return snapshot.dump(self)

    def status(self, now: float) -> dict[str, Any]:
        due: list[dict[str, Any]] = []
        busy = {r.task for r in self.runs.values()}
        for task in self.script.tasks:
            st = self.tasks.get(task.name)
            if st is not None and st.dues and not st.done:
                due.append({"task": task.name, "due": st.dues[0], "running": task.name in busy})
            elif st is not None and st.hold_until is not None:
                due.append({"task": task.name, "due": st.hold_until, "running": task.name in busy})
        due.sort(key=lambda d: d["due"])
        loops: dict[str, Any] = {}
        for lp in self.script.loops:
            if isinstance(lp, OnOffLoop) and lp.name in self.onoff:
                loops[lp.name] = {"kind": "onoff", "on": self.onoff[lp.name].on,
                                  "input": self.values.fresh(lp.input)}
            elif isinstance(lp, PidLoop) and lp.name in self.pid:
                loops[lp.name] = {"kind": "pid", "output": self.pid[lp.name].output,
                                  "input": self.values.fresh(lp.input),
                                  "setpoint": self.values.value(lp.setpoint)}
        return {"state": self.state, "run_id": self.run_id, "experiment": self.script.experiment,
                "version": self.version, "started_at": self.started_at, "elapsed": now - self.started_at,
                "next_due": due[:10], "loops": loops,
                "holding": [{"guard": g, "reason": r} for g, r in sorted(self.holding.items())],
                "variables": dict(self.values.variables),
                "fired": {name: st.fired for name, st in self.tasks.items()},
                "stale": sorted(self.stale)}

    # --- internals: indexes -------------------------------------------------

    def _index(self) -> None:
        """Which items depend on which names (rebuilt with each script version)."""
        self._signals_of: dict[str, list[str]] = {}
        for sig in self.script.signals:
            self._signals_of.setdefault(sig.source, []).append(sig.name)
        self._deps: dict[str, set[str]] = {}  # name -> "task:X" / "guard:X" / "loop:X"
        for task in self.script.tasks:
            trig = task.trigger
            if isinstance(trig, When | While):
                for n in trig.condition.names:
                    self._deps.setdefault(n, set()).add(f"task:{task.name}")
        for guard in self.script.guards:
            for n in guard.condition.names:
                self._deps.setdefault(n, set()).add(f"guard:{guard.name}")
            for u in guard_units(guard):
                self._deps.setdefault(f"unit:{u}", set()).add(f"guard:{guard.name}")
        self._timed: list[str] = [f"task:{t.name}" for t in self.script.tasks
                                  if isinstance(t.trigger, When | While) and t.trigger.condition.timed]
        self._timed += [f"guard:{g.name}" for g in self.script.guards if g.condition.timed]
        self._timed += [f"loop:{lp.name}" for lp in self.script.loops if lp.enabled is not None
                        and lp.enabled.timed]
        self._timed_checked_at: float | None = None
        self._monitored: set[str] = set()
        for n in self._deps:
            if "/" in n and not n.startswith("unit:"):
                self._monitored.add(n)
        for lp in self.script.loops:
            if "/" in lp.input:
                self._monitored.add(lp.input)
            if lp.enabled is not None:
                for n in lp.enabled.names:
                    self._deps.setdefault(n, set()).add(f"loop:{lp.name}")
        for sig in self.script.signals:
            self._monitored.add(sig.source)

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

    # --- internals: reacting to changes ------------------------------------

    def _blocked(self) -> bool:
        return bool(self.final) or self.paused or bool(self.holding) or not self.started

    def _react(self, changed: set[str], now: float, eff: list[Effect]) -> None:
        """Re-evaluate what reads the changed names: guards first (hold), then conditions, then loops."""
        if not changed or self.final:
            return
        hit: set[str] = set()
        for n in changed:
            hit |= self._deps.get(n, set())
        if any(h.startswith("guard:") for h in hit):
            self._eval_guards(now, eff)
        for task in self.script.tasks:
            if f"task:{task.name}" in hit:
                self._eval_condition(task, now)
        for lp in self.script.loops:
            if f"loop:{lp.name}" in hit and lp.input not in changed:
                self._loop_input(lp, now, eff)

    def _eval_condition(self, task: Task, now: float) -> None:
        trig = task.trigger
        st = self.tasks[task.name]
        if isinstance(trig, When):
            truth = self.values.truth(trig.condition)
            if truth and not st.truth:
                if trig.for_s > 0:
                    st.hold_until = now + trig.for_s
                else:
                    st.dues = [now]
            elif not truth:
                st.hold_until = None
                st.dues = []  # an edge not yet fired (held, busy) is forgotten when it turns false again
            st.truth = truth
        elif isinstance(trig, While):
            truth = self.values.truth(trig.condition)
            if truth and not st.inside:
                st.inside, st.dues, st.exit_pending = True, [now], False
            elif not truth and st.inside:
                st.inside, st.dues, st.exit_pending = False, [], bool(trig.on_exit)
            st.truth = truth

    def _eval_guards(self, now: float, eff: list[Effect]) -> None:
        was_held = bool(self.holding)
        for guard in self.script.guards:
            why = guard_holds(guard, self.values)
            if why is not None and guard.name not in self.holding:
                self.holding[guard.name] = why
                eff.append(LogEffect("alarm", "guard_hold", f"held by guard {guard.name}: {why}",
                                     f"guard:{guard.name}", {"guard": guard.name, "reason": why}))
                eff.extend(self._command(c.unit, c.module, c.cmd, c.args, "guard", guard.name)
                           for c in guard.outputs)
            elif why is None and guard.name in self.holding:
                del self.holding[guard.name]
                eff.append(LogEffect("info", "guard_release", f"guard {guard.name} clear",
                                     f"guard:{guard.name}", {"guard": guard.name}))
        if was_held and not self.holding and not self.final:
            for st in self.pid.values():
                st.restart()
            eff.extend(self.wanted_outputs())

    def _stale_deadlines(self) -> dict[str, float]:
        out = {}
        for name in self._monitored:
            if name in self.stale:
                continue
            seen = self.values.readings.get(name)
            out[name] = (seen[1] if seen else self.started_at) + self.script.stale_after_s
        return out

    def _check_stale(self, now: float, eff: list[Effect]) -> None:
        newly = {n for n, deadline in self._stale_deadlines().items() if now - deadline > 0}
        for name in sorted(newly):
            self.stale.add(name)
            seen = self.values.readings.get(name)
            age = "never received" if seen is None else f"last {now - seen[1]:.1f} s ago"
            eff.append(LogEffect("warning", "stale_reading", f"{name} is stale ({age}; stale_after "
                                 f"{self.script.stale_after_s:g} s): not used until a fresh one arrives",
                                 "engine", {"name": name}))
        changed = set(newly)
        for name in newly:
            changed.update(self._signals_of.get(name, ()))
        self._react(changed, now, eff)

    # --- internals: time ----------------------------------------------------

    def _settle(self, now: float, eff: list[Effect]) -> None:
        """Everything that is due at `now`, in order: end of run, staleness, timers, sequences, edits."""
        if self.final or not self.started:
            return
        if self.script.duration_s is not None and now >= self.started_at + self.script.duration_s:
            self._stop(now, "duration reached", eff, "finished")
            return
        self._check_stale(now, eff)
        last = self._timed_checked_at
        if self._timed and (last is None or now >= last + TIMED_RECHECK_S):
            self._timed_checked_at = now
            if any(item.startswith("guard:") for item in self._timed):
                self._eval_guards(now, eff)
            for task in self.script.tasks:
                if f"task:{task.name}" in self._timed:
                    self._eval_condition(task, now)
            for lp in self.script.loops:
                if f"loop:{lp.name}" in self._timed:
                    self._loop_input(lp, now, eff)
        for task in self.script.tasks:
            st = self.tasks[task.name]
            if st.hold_until is not None and st.hold_until <= now:
                st.hold_until = None
                assert isinstance(task.trigger, When)
                if self.values.truth(task.trigger.condition):
                    st.dues = [now]
                else:
                    st.truth = False
        self._loop_timers(now, eff)
        for run in list(self.runs.values()):
            self._drive(run, now, eff)
        self._fire_dues(now, eff)
        if self.pending_apply is not None and not self.final:
            new, version, author = self.pending_apply
            self.pending_apply = None
            hotedit.apply(self, new, version, author, now, eff)
            self._settle(now, eff)

    def _fire_dues(self, now: float, eff: list[Effect]) -> None:
        sequences.fire_dues(self, now, eff)

    def _start_run(self, task: Task, part: Part, now: float, eff: list[Effect]) -> None:
        sequences.start_run(self, task, part, now, eff)

    def _drive(self, run: TaskRun, now: float, eff: list[Effect]) -> None:
        sequences.drive(self, run, now, eff)

    # --- internals: commands and loops -------------------------------------

    def _command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value], kind: str,
                 ref: str, origin: str | None = None) -> CommandEffect:
        self.counter += 1
        effect_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"labedge:{self.run_id}:{self.counter}"))
        self.pending[effect_id] = (kind, ref)
        if module is not None:
            if cmd in ON_COMMANDS:
                self.touched.add((unit, module))
            if kind == "task" and cmd in STATE_COMMANDS:
                self.task_outputs[(unit, module)] = (cmd, dict(args))
        return CommandEffect(effect_id, unit, module, cmd, dict(args), origin or f"{kind}:{ref}")

    def _speed_command(self, lp: PidLoop, output: float) -> CommandEffect:
        return loop_control.speed_command(self, lp, output)

    def _loop_enabled(self, lp: Loop) -> bool:
        return lp.enabled is None or self.values.truth(lp.enabled)

    def _loop_input(self, lp: Loop, now: float, eff: list[Effect]) -> None:
        loop_control.loop_input(self, lp, now, eff)

    def _loop_timers(self, now: float, eff: list[Effect]) -> None:
        loop_control.loop_timers(self, now, eff)

    def _stop(self, now: float, reason: str, eff: list[Effect], final: str) -> None:
        if self.final:
            return
        self.final = final
        self.runs.clear()
        self.pending_apply = None
        for st in self.tasks.values():
            st.dues, st.hold_until = [], None
        modules = set(self.touched) | {lp.output for lp in self.script.loops}
        for unit, module in sorted(modules):
            eff.append(self._command(unit, module, "off", {}, "stop", "all", "stop"))
        eff.append(LogEffect("info", final, f"experiment {final}: {reason}; outputs off: "
                             f"{', '.join(f'{u}/{m}' for u, m in sorted(modules)) or 'none'}", "engine",
                             {"reason": reason}))

    def _restore(self, data: Mapping[str, Any]) -> None:
        snapshot.load(self, data)
        self.values.stale_after_s = self.script.stale_after_s
        self._index()


__all__ = ["Engine", "ScriptDiff", "unit_of"]
