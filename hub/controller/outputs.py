"""The commands the engine sends on its own account: ids, the outputs it touched, stopping, re-applying.

Every command gets a deterministic id (uuid5 of the run id and a counter, kept
in the snapshot), so one re-sent after a restart carries the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hub.controller import switch_off
from hub.controller.effects import CommandEffect, Effect, LogEffect
from hub.script.model import Guard, OnOffLoop, PidLoop, Value

if TYPE_CHECKING:
    from hub.controller.engine import Engine

# Commands that leave an output running: `stop` turns every module that got one off again.
ON_COMMANDS = frozenset({"on", "pulse", "run", "dose"})
STATE_COMMANDS = frozenset({"on", "off"})  # re-applied after a hold or a restart; a dose never is


def command(engine: Engine, unit: str, module: str | None, cmd: str, args: Mapping[str, Value], kind: str,
            ref: str, origin: str | None = None) -> CommandEffect:
    engine.counter += 1
    effect_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"labedge:{engine.run_id}:{engine.counter}"))
    engine.pending[effect_id] = (kind, ref)
    if module is not None:
        if cmd in ON_COMMANDS:
            engine.touched.add((unit, module))
        if cmd in switch_off.LONG_COMMANDS:
            engine.inflight[effect_id] = (unit, module)
        if kind == "task" and cmd in STATE_COMMANDS:
            engine.task_outputs[(unit, module)] = (cmd, dict(args))
    return CommandEffect(effect_id, unit, module, cmd, dict(args), origin or f"{kind}:{ref}")


def stop(engine: Engine, now: float, reason: str, eff: list[Effect], final: str) -> None:
    if engine.final:
        return
    engine.final = final
    engine.runs.clear()
    engine.pending_apply = None
    for st in engine.tasks.values():
        st.dues, st.hold_until = [], None
    modules = set(engine.touched) | {lp.output for lp in engine.script.loops}
    for unit, module in sorted(modules):
        off = switch_off.turn_off(engine, unit, module, "stop", "all", "stop")
        if off is not None:
            eff.append(off)
    eff.append(LogEffect("info", final, f"experiment {final}: {reason}; outputs off: "
                         f"{', '.join(f'{u}/{m}' for u, m in sorted(modules)) or 'none'}", "engine",
                         {"reason": reason}))


def guard_outputs(engine: Engine, guard: Guard) -> list[CommandEffect]:
    """A holding guard's commands; its `off`s bring the output off whatever runs (switch_off)."""
    out: list[CommandEffect] = []
    for c in guard.outputs:
        if c.cmd == "off" and c.module is not None and not c.args:
            off = switch_off.turn_off(engine, c.unit, c.module, "guard", guard.name)
            if off is not None:
                out.append(off)
        else:
            out.append(command(engine, c.unit, c.module, c.cmd, c.args, "guard", guard.name))
    return out


def wanted_outputs(engine: Engine) -> list[CommandEffect]:
    """The outputs the script wants now: loops' and tasks' on/off state, or the guards' while held."""
    out: list[CommandEffect] = []
    if engine.final:
        return out
    if engine.holding:
        for guard in engine.script.guards:
            if guard.name in engine.holding:
                out.extend(guard_outputs(engine, guard))
        return out
    covered: set[tuple[str, str]] = set()
    for lp in engine.script.loops:
        covered.add(lp.output)
        if isinstance(lp, OnOffLoop) and engine.onoff[lp.name].on is not None:
            cmd = "on" if engine.onoff[lp.name].on else "off"
            out.append(command(engine, *lp.output, cmd, {}, "loop", lp.name))
        elif isinstance(lp, PidLoop) and lp.period_s == 0 and engine.pid[lp.name].output is not None:
            out.append(engine._speed_command(lp, engine.pid[lp.name].output or 0.0))
    for (unit, module), (cmd, args) in sorted(engine.task_outputs.items()):
        if (unit, module) not in covered:
            out.append(command(engine, unit, module, cmd, args, "reapply", f"{unit}/{module}",
                               "task:outputs"))
    return out
