"""Typed wire codecs for every message of docs/contract.md: `encode(message)` and `decode(Type, payload)`.

JSON is built in one place (`jsonbytes.to_bytes`); decoding a bad payload
raises WireFormatError (a LabedgeError and a ValueError) whose `field` names
the first bad field, e.g. `readings[2].ts`. The Command codec reaches the
unit's own parser in `lecis.commands`, so both sides read commands alike.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from lecis.commands import Command
from lecis.errors import WireEncodeError, WireFormatError
from lecis.topics import Topics
from lecis.wire.birth import Birth, BirthModule
from lecis.wire.command import CommandFormatError, command_body, decode_command, encode_command
from lecis.wire.jsonbytes import MAX_DEPTH, MAX_PAYLOAD_BYTES, from_bytes, to_bytes
from lecis.wire.messages import (
    Button,
    Data,
    Event,
    HubState,
    Message,
    ModuleState,
    Reading,
    Reply,
    ReplyError,
    RunningCommand,
    Session,
    StateError,
    UnitState,
    UnitStateName,
    check,
)

M = TypeVar("M", bound=Message)

#: The message type of each topic leaf under a unit (`$…` for unit topics) and of the hub's topics.
MESSAGE_BY_LEAF: dict[str, type[Message]] = {
    "$state": UnitState, "$birth": Birth, "$reply": Reply, "$button": Button,
    "state": ModuleState, "data": Data, "event": Event, "reply": Reply,
}

__all__ = [
    "MAX_DEPTH", "MAX_PAYLOAD_BYTES", "Birth", "BirthModule", "Button", "Command", "CommandFormatError",
    "Data", "Event", "HubState", "Message", "ModuleState", "Reading", "Reply", "ReplyError",
    "RunningCommand", "Session", "StateError", "UnitState", "UnitStateName", "WireEncodeError",
    "MESSAGE_BY_LEAF", "WireFormatError", "check", "command_body", "decode", "decode_command",
    "decode_topic", "encode", "encode_command",
    "from_bytes", "to_bytes",
]


def encode(message: Message | Command) -> bytes:
    """The message as contract JSON bytes; WireEncodeError when JSON cannot hold it."""
    if isinstance(message, Command):
        return encode_command(message)
    return to_bytes(message.to_json())


@overload
def decode(cls: type[Command], payload: bytes) -> Command: ...
@overload
def decode(cls: type[M], payload: bytes) -> M: ...
def decode(cls: Any, payload: bytes) -> Any:
    """`payload` decoded as `cls` (e.g. `decode(Reply, payload)`); WireFormatError naming the bad field."""
    if cls is Command:
        return decode_command(payload)
    return cls.from_json(from_bytes(payload))


def decode_topic(topics: Topics, topic: str, payload: bytes) -> Message | Command | None:
    """The message on `topic` decoded by its type, or None for a topic the contract gives no type.

    `lab/hub/$state` is a HubState, `lab/hub/sessions/U` a Session, `lab/U/M/cmd` and
    `lab/U/$cmd` Commands; WireFormatError when the payload does not fit its type.
    """
    if topic == topics.hub_state():
        return decode(HubState, payload)
    parts = topics.split(topic)
    if parts is None:
        return None
    unit, target, leaf = parts
    if unit == "hub" and target == "sessions":
        return decode(Session, payload)
    if (target == "$cmd" and not leaf) or leaf == "cmd":
        return decode_command(payload)
    cls = MESSAGE_BY_LEAF.get(target if target.startswith("$") else leaf)
    return None if cls is None else decode(cls, payload)
