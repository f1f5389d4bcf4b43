"""Checks that a decoded payload has the shape docs/contract.md gives it, by topic leaf.

Each check returns a list of problems (empty when fine); the rules are the
decoders' of `lecis.wire`, which name the first bad field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lecis.wire import (
    MESSAGE_BY_LEAF,
    Birth,
    Button,
    Data,
    Event,
    Message,
    ModuleState,
    Reply,
    UnitState,
    check,
)
from lecis.wire.fields import TS_PATTERN
from lecis.wire.messages import EVENT_LEVELS, UNIT_STATES

__all__ = ["CHECKS_BY_LEAF", "ERROR_KINDS", "EVENT_LEVELS", "LECIS_STATES", "REPLY_STATUSES", "TS_PATTERN",
           "UNIT_STATES"]

LECIS_STATES = (
    "POWERED_UP", "INITIALIZING", "IDLE", "BUSY", "PAUSED", "ESTOPPED", "CLEARING", "ERROR", "SHUTDOWN",
)
REPLY_STATUSES = ("accepted", "running", "done", "failed", "rejected")
ERROR_KINDS = ("unknown_command", "validation", "state", "denied", "execution")


def check_unit_state(obj: Any) -> list[str]:
    return check(UnitState, obj)


def check_birth(obj: Any) -> list[str]:
    return check(Birth, obj)


def check_module_state(obj: Any) -> list[str]:
    return check(ModuleState, obj)


def check_data(obj: Any) -> list[str]:
    return check(Data, obj)


def check_event(obj: Any) -> list[str]:
    return check(Event, obj)


def check_reply(obj: Any) -> list[str]:
    return check(Reply, obj)


def check_button(obj: Any) -> list[str]:
    return check(Button, obj)


def _checker(cls: type[Message]) -> Callable[[Any], list[str]]:
    return lambda obj: check(cls, obj)


CHECKS_BY_LEAF: dict[str, Callable[[Any], list[str]]] = {
    leaf: _checker(cls) for leaf, cls in MESSAGE_BY_LEAF.items()
}
