"""Unit-level commands on `lab/U/$cmd`: the lease, ESTOP/CLEAR/RESET/STATUS of all modules, the LED.

`led.refuse` (no lease, no arguments) makes the status LED show a refusal: the
hub sends it when a button press is refused (docs/sessions.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.replies import Replier, ReplyLog, Send
from lecis.commands import FINAL_STATUS_VALUES, Command, ReplyStatus
from lecis.errors import CommandInvalid, CommandUnknown
from lecis.states import LecisState

if TYPE_CHECKING:
    from edge.unit import Unit

UNIT_COMMANDS = ("lease.acquire", "lease.renew", "lease.release", "ESTOP", "CLEAR", "RESET", "STATUS",
                 "LOCAL", "REMOTE", "led.refuse")
NEEDS_NO_LEASE = frozenset({"lease.acquire", "lease.renew", "lease.release", "STATUS", "ESTOP",
                            "led.refuse"})


def _name(cmd: str) -> str | None:
    if cmd in UNIT_COMMANDS:
        return cmd
    upper = cmd.upper()
    return upper if upper in UNIT_COMMANDS and not upper.startswith("LEASE") else None


def handle_unit_command(unit: Unit, command: Command, reply: Replier) -> None:
    """Check and carry out a unit command; raises CommandRejected for the caller to answer."""
    name = _name(command.cmd)
    if name is None:
        raise CommandUnknown(f"unit {unit.id} has no command {command.cmd!r} (unit commands: "
                             f"{', '.join(UNIT_COMMANDS)})")
    lease = unit.lease
    if name == "lease.acquire":
        reply(ReplyStatus.DONE, result=lease.acquire(command.args))
        return
    if name == "lease.renew":
        lease.verify(command.lease)
        _no_args(name, command.args)
        reply(ReplyStatus.DONE, result=lease.renew(command.lease))
        return
    if name == "lease.release":
        lease.verify(command.lease)
        _no_args(name, command.args)
        reply(ReplyStatus.DONE, result=lease.release(command.lease))
        return
    held = None if name in NEEDS_NO_LEASE else lease.verify(command.lease)
    _no_args(name, command.args)
    if held is not None:
        lease.extend(held)
    if name == "STATUS":
        reply(ReplyStatus.DONE, result=unit.status())
    elif name == "led.refuse":
        reply(ReplyStatus.DONE, result={"shown": _refuse(unit)})
    elif name == "ESTOP":
        unit.estop("unit ESTOP command")
        reply(ReplyStatus.DONE, result=_states(unit))
    elif name == "CLEAR":
        for module in unit.modules.values():
            if module.state in (LecisState.ESTOPPED, LecisState.ERROR):
                module.clear(unit.quiet_replier())
        reply(ReplyStatus.DONE, result=_states(unit))
    elif name == "RESET":
        reply(ReplyStatus.ACCEPTED)
        _reset_all(unit, reply)
    else:  # LOCAL / REMOTE
        for module in unit.modules.values():
            module.sm.control = module.sm.control.__class__(name)
            module.publish_state()
        reply(ReplyStatus.DONE, result=_states(unit))


def _reset_all(unit: Unit, reply: Replier) -> None:
    """RESET every module; `done` once each is back (ESTOPPED ones come back ESTOPPED), else `failed`."""
    modules = [m for m in unit.modules.values() if m.state is not LecisState.SHUTDOWN]
    waiting = {m.id for m in modules}
    problems: list[str] = []

    def settled(module_id: str) -> Send:
        def send(topic: str, payload: dict[str, Any]) -> None:
            if payload["status"] not in FINAL_STATUS_VALUES or module_id not in waiting:
                return
            waiting.discard(module_id)
            if payload["status"] != ReplyStatus.DONE.value:
                problems.append(f"{module_id}: {(payload.get('error') or {}).get('message')}")
            if not waiting:
                if problems:
                    reply.failed("RESET left modules in ERROR: " + "; ".join(problems))
                else:
                    reply(ReplyStatus.DONE, result=_states(unit))
        return send

    if not modules:
        reply(ReplyStatus.DONE, result=_states(unit))
    for module in modules:
        module.reset(Replier(settled(module.id), ReplyLog(1), unit.clock, "", None))


def _refuse(unit: Unit) -> bool:
    """The refusal on the unit's status LED; False when it has none or shows an ESTOP/ERROR."""
    for extra in unit.extras:
        led = getattr(extra, "led", None)
        if led is not None and hasattr(led, "refuse"):
            return bool(led.refuse())
    return False


def _no_args(name: str, args: dict[str, Any]) -> None:
    if args:
        first = sorted(args)[0]
        raise CommandInvalid(f"{name} takes no arguments, got {first!r}", first)


def _states(unit: Unit) -> dict[str, Any]:
    return {"modules": {mid: m.state.value for mid, m in unit.modules.items()}}
