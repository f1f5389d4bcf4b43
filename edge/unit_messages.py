"""Incoming messages of a unit: routed to the unit or a module, answered once per id, never fatal.

`handle_message` is the boundary between the broker link and everything the
unit does with a command: whatever raises in between is logged and answered
`rejected` (kind `execution`), so one message can never stop the link serving
the next one, ESTOP included (docs/protocol.md "Commands").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edge.replies import Replier, ReplyLog
from edge.unit_commands import handle_unit_command
from lecis.commands import CommandPayloadInvalid, ReplyStatus, parse_command
from lecis.errors import CommandRejected
from lecis.topics import MODULE_ID, UNIT_CMD

if TYPE_CHECKING:
    from edge.unit import Unit

log = logging.getLogger("labedge.unit")


def handle_message(unit: Unit, topic: str, payload: bytes) -> None:
    """Route one incoming message; never raises."""
    try:
        _route(unit, topic, payload)
    except Exception:
        log.exception("message on %s could not be handled (%d bytes)", topic, len(payload))
        _reject_unhandled(unit, topic)


def reply_topic_for(unit: Unit, topic: str) -> str | None:
    """Where the answer to a command on `topic` goes; None if `topic` is no command topic of `unit`."""
    parts = unit.topics.split(topic)
    if parts is None or parts[0] != unit.id:
        return None
    _, target, leaf = parts
    if target == UNIT_CMD:
        # `lab/U/$cmd` only: `lab/U/$cmd/cmd` also matches the module filter `lab/U/+/cmd`.
        return unit.topics.unit_reply(unit.id) if leaf == "" else None
    if leaf == "cmd" and MODULE_ID.match(target):
        return unit.topics.reply(unit.id, target)
    return None


def _internal_error(what: str) -> dict[str, str | None]:
    return {"kind": "execution", "param": None,
            "message": f"the unit could not handle {what} (an internal error, logged on the unit)"}


def _reject_unhandled(unit: Unit, topic: str) -> None:
    """Answer a message whose handling raised: `rejected`, id null (it may not be trustworthy)."""
    try:
        reply_topic = reply_topic_for(unit, topic)
        if reply_topic is None:
            return
        reply = Replier(unit.send_reply, ReplyLog(1), unit.clock, reply_topic, None)
        reply(ReplyStatus.REJECTED, _internal_error("this message"))
    except Exception:
        log.exception("could not answer a message on %s", topic)


def _route(unit: Unit, topic: str, payload: bytes) -> None:
    reply_topic = reply_topic_for(unit, topic)
    if reply_topic is None:
        return
    parts = unit.topics.split(topic)
    assert parts is not None
    target = parts[1]
    try:
        command = parse_command(payload)
    except CommandPayloadInvalid as exc:
        earlier = unit.replies.get(exc.command_id) if exc.command_id else None
        if earlier is not None:
            unit.send_reply(reply_topic, earlier)
            return
        reply = Replier(unit.send_reply, unit.replies, unit.clock, reply_topic, exc.command_id)
        reply(ReplyStatus.REJECTED, exc.to_error())
        return
    earlier = unit.replies.get(command.id)
    if earlier is not None:
        unit.send_reply(reply_topic, earlier)  # answered again, never executed twice
        return
    reply = Replier(unit.send_reply, unit.replies, unit.clock, reply_topic, command.id)
    try:
        if target == UNIT_CMD:
            handle_unit_command(unit, command, reply)
        elif target in unit.modules:
            unit.modules[target].handle(command, reply)
        else:
            known = ", ".join(sorted(unit.modules))
            reply(ReplyStatus.REJECTED, {"kind": "unknown_command", "param": None,
                                         "message": f"unit {unit.id} has no module {target!r} "
                                                    f"(modules: {known})"})
    except CommandRejected as exc:
        reply(ReplyStatus.REJECTED, exc.to_error())
    except Exception:
        log.exception("%s on %s raised while being handled", command.cmd, topic)
        reply(ReplyStatus.REJECTED, _internal_error(repr(command.cmd)))
