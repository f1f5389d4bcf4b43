"""Payload shapes of CONTRACT.md, and checks that a payload has them.

Readers ignore unknown fields, so the checks only look at the fields the
contract names. Each check returns a list of problems (empty when fine).
"""

from __future__ import annotations

import re
from typing import Any

from lecis.clock import parse_ts

UNIT_STATES = ("init", "ready", "disconnected", "lost")
LECIS_STATES = (
    "POWERED_UP", "INITIALIZING", "IDLE", "BUSY", "PAUSED", "ESTOPPED", "CLEARING", "ERROR", "SHUTDOWN",
)
EVENT_LEVELS = ("info", "warning", "alarm")
REPLY_STATUSES = ("accepted", "running", "done", "failed", "rejected")
ERROR_KINDS = ("unknown_command", "validation", "state", "denied", "execution")
TS_PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _ts_problems(obj: dict[str, Any], key: str = "ts") -> list[str]:
    value = obj.get(key)
    if not isinstance(value, str) or not TS_PATTERN.match(value):
        return [f"{key} must be UTC ISO 8601 with milliseconds and Z, got {value!r}"]
    try:
        parse_ts(value)
    except ValueError as exc:
        return [f"{key}: {exc}"]
    return []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_unit_state(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["payload is not an object"]
    problems = _ts_problems(obj)
    if obj.get("state") not in UNIT_STATES:
        problems.append(f"state must be one of {UNIT_STATES}, got {obj.get('state')!r}")
    if not isinstance(obj.get("boot"), str) or not obj["boot"]:
        problems.append("boot must be the id of this process start")
    return problems


def check_birth(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["payload is not an object"]
    problems = _ts_problems(obj)
    for key in ("version", "boot", "unit"):
        if not isinstance(obj.get(key), str):
            problems.append(f"{key} must be a string")
    modules = obj.get("modules")
    if not isinstance(modules, dict):
        return problems + ["modules must be an object keyed by module id"]
    for name, module in modules.items():
        if not isinstance(module, dict):
            problems.append(f"modules.{name} is not an object")
            continue
        for key in ("kind", "driver", "on_controller_loss"):
            if not isinstance(module.get(key), str):
                problems.append(f"modules.{name}.{key} must be a string")
        if not isinstance(module.get("readings"), list):
            problems.append(f"modules.{name}.readings must be a list")
        if not isinstance(module.get("commands"), dict):
            problems.append(f"modules.{name}.commands must be an object")
    return problems


def check_module_state(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["payload is not an object"]
    problems = _ts_problems(obj)
    if obj.get("lecis") not in LECIS_STATES:
        problems.append(f"lecis must be a LECIS state, got {obj.get('lecis')!r}")
    if obj.get("control") not in ("REMOTE", "LOCAL"):
        problems.append(f"control must be REMOTE or LOCAL, got {obj.get('control')!r}")
    if not isinstance(obj.get("outputs"), dict):
        problems.append("outputs must be an object")
    error = obj.get("error", "missing")
    if error is not None and not (isinstance(error, dict) and "code" in error and "message" in error):
        problems.append(f"error must be null or {{code, message}}, got {error!r}")
    return problems


def check_data(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["payload is not an object"]
    problems = []
    if not _is_int(obj.get("seq")):
        problems.append("seq must be an integer")
    if not isinstance(obj.get("hist"), bool):
        problems.append("hist must be true or false")
    readings = obj.get("readings")
    if not isinstance(readings, list) or not readings:
        return problems + ["readings must be a non-empty list"]
    for i, reading in enumerate(readings):
        if not isinstance(reading, dict):
            problems.append(f"readings[{i}] is not an object")
            continue
        problems += [f"readings[{i}].{p}" for p in _ts_problems(reading)]
        values = reading.get("values")
        if not isinstance(values, dict) or not values:
            problems.append(f"readings[{i}].values must be a non-empty object")
    return problems


def check_event(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["payload is not an object"]
    problems = _ts_problems(obj)
    if not _is_int(obj.get("seq")):
        problems.append("seq must be an integer")
    if obj.get("level") not in EVENT_LEVELS:
        problems.append(f"level must be one of {EVENT_LEVELS}, got {obj.get('level')!r}")
    for key in ("code", "message"):
        if not isinstance(obj.get(key), str):
            problems.append(f"{key} must be a string")
    return problems


def check_reply(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["payload is not an object"]
    problems = _ts_problems(obj)
    if "id" not in obj:
        problems.append("id is missing")
    if obj.get("status") not in REPLY_STATUSES:
        problems.append(f"status must be one of {REPLY_STATUSES}, got {obj.get('status')!r}")
    error = obj.get("error")
    if obj.get("status") in ("rejected", "failed"):
        if not isinstance(error, dict) or error.get("kind") not in ERROR_KINDS:
            problems.append(f"a {obj.get('status')} reply needs error.kind, got {error!r}")
        elif "param" not in error or not isinstance(error.get("message"), str):
            problems.append("error needs param and message")
    elif error is not None:
        problems.append("error must be null unless rejected or failed")
    if not isinstance(obj.get("result"), dict):
        problems.append("result must be an object")
    return problems


def check_button(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return ["payload is not an object"]
    problems = _ts_problems(obj)
    if obj.get("button") not in ("start", "stop"):
        problems.append("button must be start or stop")
    if obj.get("action") not in ("pressed", "held"):
        problems.append("action must be pressed or held")
    return problems


CHECKS_BY_LEAF = {
    "$state": check_unit_state,
    "$birth": check_birth,
    "$reply": check_reply,
    "$button": check_button,
    "state": check_module_state,
    "data": check_data,
    "event": check_event,
    "reply": check_reply,
}
