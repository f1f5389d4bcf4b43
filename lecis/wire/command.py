"""The Command codec: parsing stays in `lecis.commands` (the unit's own parser), reached from here."""

from __future__ import annotations

from typing import Any

from lecis.commands import MAX_PAYLOAD_BYTES, Command, CommandPayloadInvalid, parse_command
from lecis.errors import WireFormatError
from lecis.wire.jsonbytes import to_bytes


class CommandFormatError(WireFormatError, CommandPayloadInvalid):
    """A `cmd` payload that is not a command: a WireFormatError that the unit answers `rejected`.

    `field` and `param` name the bad field; `command_id` is what could be read of the id.
    """

    def __init__(self, source: CommandPayloadInvalid) -> None:
        CommandPayloadInvalid.__init__(self, source.message, source.param, source.command_id)
        self.field = source.param


def command_body(command: Command) -> dict[str, Any]:
    body: dict[str, Any] = {"id": command.id, "cmd": command.cmd, "args": command.args}
    if command.lease is not None:
        body["lease"] = command.lease
    return body


def encode_command(command: Command) -> bytes:
    return to_bytes(command_body(command))


def decode_command(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Command:
    """`lecis.commands.parse_command`, its refusal raised as CommandFormatError."""
    try:
        return parse_command(payload, max_bytes=max_bytes)
    except CommandFormatError:
        raise
    except CommandPayloadInvalid as exc:
        raise CommandFormatError(exc) from None
