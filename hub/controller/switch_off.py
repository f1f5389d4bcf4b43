"""Bringing an output to off whatever its state: `off`, or the standard `ABORT` while a long command runs.

A unit takes device commands only in IDLE. While a `pulse`, `run` or `dose`
runs, its module is BUSY (PAUSED if paused) and refuses `off` (rejected, kind
`state`); `ABORT`, allowed in BUSY and PAUSED only, ends the command with the
outputs safe and the module IDLE (docs/protocol.md). So when the engine turns
an output off on its own account (the run stops or finishes, a removed or
rebuilt loop's output, a guard's `off`):

- an output with a long command of ours in flight gets `ABORT`; others `off`
  (a removed loop aborts only its own pulse: a task's `dose` in flight on its
  output is left to end, with the output off);
- an `off` rejected with kind `state` is followed by `ABORT` (the module runs
  something the engine did not know of: another client's, or one sent before
  a restart);
- an `ABORT` that fails (the command ended meanwhile: the module is IDLE, so
  ABORT is refused) is followed by `off`;

at most MAX_TRIES commands per output; a last failure is reported like any
failed command. The long command an ABORT ends answers `failed`: that is
logged as info (`command_aborted`), and a task's `on_error` does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hub.controller.effects import CommandEffect, Effect, LogEffect, Outcome

if TYPE_CHECKING:
    from hub.controller.engine import Engine

LONG_COMMANDS = frozenset({"pulse", "run", "dose"})  # the module is BUSY until they end
ABORT = "ABORT"
MAX_TRIES = 3


@dataclass(frozen=True)
class Switching:
    """One command of an output's way to off, and what to say when it is answered."""

    unit: str
    module: str
    cmd: str  # "off" or "ABORT"
    tries: int
    kind: str
    ref: str
    origin: str


def running(engine: Engine, unit: str, module: str) -> list[str]:
    """Effect ids of the long commands the engine sent to this module and has no answer to yet."""
    return [eid for eid, um in engine.inflight.items() if um == (unit, module)]


def turn_off(engine: Engine, unit: str, module: str, kind: str, ref: str, origin: str | None = None,
             *, own_only: bool = False) -> CommandEffect | None:
    """The first command of the way to off. `own_only`: abort only a long command sent under the same
    (kind, ref) (a removed loop's own pulse); None when another's runs, which ends with the output off."""
    busy = running(engine, unit, module)
    if own_only and any(engine.pending.get(eid) != (kind, ref) for eid in busy):
        return None
    cmd = ABORT if busy else "off"
    return _send(engine, Switching(unit, module, cmd, 1, kind, ref, origin or f"{kind}:{ref}"))


def _send(engine: Engine, sw: Switching) -> CommandEffect:
    if sw.cmd == ABORT:
        engine.aborted.update(running(engine, sw.unit, sw.module))
    c = engine._command(sw.unit, sw.module, sw.cmd, {}, sw.kind, sw.ref, sw.origin)
    engine.switching[c.effect_id] = sw
    return c


def answered(engine: Engine, effect_id: str, outcome: Outcome, eff: list[Effect]) -> bool:
    """Follow an `off`/`ABORT` answer up; True when it needs no more handling (done, or followed up)."""
    sw = engine.switching.pop(effect_id, None)
    if sw is None:
        return False
    if outcome.ok:
        return True
    error = outcome.error or {}
    nxt = None
    if sw.tries < MAX_TRIES:
        if sw.cmd == "off" and outcome.status == "rejected" and error.get("kind") == "state":
            nxt = ABORT
        elif sw.cmd == ABORT and outcome.status in ("rejected", "failed"):
            nxt = "off"
    if nxt is None:
        return False
    target = f"{sw.unit}/{sw.module}"
    why = f"{sw.cmd} {outcome.status}: {error.get('message', '')}".strip()
    eff.append(LogEffect("info", "switching_off", f"{target}: {why}; sending {nxt}", sw.origin,
                         {"unit": sw.unit, "module": sw.module, "refused": sw.cmd, "next": nxt}))
    eff.append(_send(engine, replace(sw, cmd=nxt, tries=sw.tries + 1)))
    return True
