"""What `labedge cmd` reads from its command line, parsed without I/O.

`UNIT[/MODULE]`, `key=value` arguments with their values typed the way a
technician would write them, `--json` for anything else, `--broker host:port`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from lecis.errors import LabedgeError
from lecis.states import LEASE_FREE
from lecis.topics import MODULE_ID, UNIT_ID

INTEGER = re.compile(r"^[-+]?[0-9]{1,18}$")
NUMBER = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")


class CmdUsageError(LabedgeError):
    """A `labedge cmd` argument that cannot be used; the message says how to write it."""


@dataclass(frozen=True)
class Target:
    unit: str
    module: str | None  # None: the unit itself (`$cmd`)

    def __str__(self) -> str:
        return self.unit if self.module is None else f"{self.unit}/{self.module}"


def parse_target(text: str) -> Target:
    """`bench-1` or `bench-1/pump1`."""
    unit, _, module = text.partition("/")
    if not UNIT_ID.match(unit):
        raise CmdUsageError(f"{unit!r} is not a unit id (lower-case letters, digits and -, e.g. bench-1)")
    if _ and not MODULE_ID.match(module):
        raise CmdUsageError(f"{module!r} is not a module id (lower-case letters, digits and _, e.g. pump1)")
    return Target(unit, module or None)


def parse_value(text: str) -> Any:
    """`5` -> 5, `2.5` -> 2.5, `true`/`false` -> bool, `null` -> None, `"5"` -> "5", else the text."""
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if INTEGER.match(text):
        return int(text)
    if NUMBER.match(text):
        value = float(text)
        if math.isfinite(value):
            return value
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            quoted = json.loads(text)
        except ValueError:
            raise CmdUsageError(f"{text} is not a valid quoted string (JSON rules)") from None
        if isinstance(quoted, str):
            return quoted
    return text


def parse_args(pairs: list[str], json_args: str | None) -> dict[str, Any]:
    """`--json` first, then every `key=value` on top of it."""
    out: dict[str, Any] = {}
    if json_args is not None:
        try:
            loaded = json.loads(json_args)
        except ValueError as exc:
            raise CmdUsageError(f"--json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise CmdUsageError('--json must be a JSON object, e.g. --json \'{"ml": 2.5}\'')
        out.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not KEY.match(key):
            raise CmdUsageError(f"{pair!r} is not key=value (e.g. seconds=5, ml=2.5, on=true)")
        out[key] = parse_value(value)
    return out


def parse_broker(text: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port`; the port defaults to 1883."""
    host, port = text, "1883"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise CmdUsageError(f"--broker {text!r}: write [address]:port")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise CmdUsageError(f"--broker {text!r}: write host:port, e.g. 127.0.0.1:1883")
    return host, int(port)


def needs_lease(command: str) -> bool:
    """STATUS and ESTOP need none (docs/contract.md); lease commands carry their own."""
    return command not in LEASE_FREE and not command.startswith("lease.")
