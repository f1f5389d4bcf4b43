"""Guards (suspenders): whether one holds the experiment now, and why.

A guard fails safe: it holds while its condition is true, while a unit its
condition reads is offline, and while its condition cannot be evaluated (a
reading it reads is stale or has not arrived yet).
"""

from __future__ import annotations

from hub.controller.conditions import Values, unit_of
from hub.script.errors import EvaluationError
from hub.script.model import Guard


def guard_units(guard: Guard) -> set[str]:
    return {u for u in (unit_of(n) for n in guard.condition.names) if u}


def guard_holds(guard: Guard, values: Values) -> str | None:
    """Why the guard holds now (a message for the log and the status), or None when it is clear."""
    offline = sorted(u for u in guard_units(guard) if not values.unit_online(u))
    if offline:
        return f"unit {', '.join(offline)} offline"
    try:
        value = guard.condition.evaluate(values)
    except EvaluationError as exc:
        return f"cannot evaluate {guard.condition.text!r}: {exc}"
    return f"{guard.condition.text} is true" if value else None
