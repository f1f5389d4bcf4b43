"""Guards (suspenders): whether one holds the experiment now, and why.

A guard fails safe: it holds while its condition is true, while a unit its
condition reads is offline, and while its condition cannot be evaluated (a
reading it reads is stale or has not arrived yet). Waiting for the first
readings at the start of a run is normal: such a hold is told apart
(`waiting_for`), so that only a hold that means something is an alarm.
"""

from __future__ import annotations

from collections.abc import Collection

from hub.controller.conditions import Values, unit_of
from hub.script.errors import EvaluationError
from hub.script.model import Guard, Value


def guard_units(guard: Guard) -> set[str]:
    return {u for u in (unit_of(n) for n in guard.condition.names) if u}


def guard_holds(guard: Guard, values: Values, units: Collection[str] | None = None) -> str | None:
    """Why the guard holds now (a message for the log and the status), or None when it is clear.

    `units`: the units its condition reads, when known already (the engine's index keeps them).
    """
    if units is None:
        units = guard_units(guard)
    if units:
        offline = [u for u in units if not values.unit_online(u)]
        if offline:
            return f"unit {', '.join(sorted(offline))} offline"
    try:
        value = guard.condition.evaluate(values)
    except EvaluationError as exc:
        return f"cannot evaluate {guard.condition.text!r}: {exc}"
    return f"{guard.condition.text} is true" if value else None


def _reads(guard: Guard, signals: Collection[str]) -> list[str]:
    """The readings and signals the guard's condition reads."""
    return sorted(n for n in guard.condition.names if ("/" in n and "." in n) or n in signals)


class _FirstReadings:
    """The values, with readings not seen yet taken as about to arrive: fresh, but without a value."""

    def __init__(self, values: Values, unseen: Collection[str]) -> None:
        self.values, self.unseen = values, unseen

    def lookup(self, name: str) -> Value:
        if name in self.unseen:
            raise EvaluationError(f"{name} has no value yet")
        return self.values.lookup(name)

    def age(self, name: str) -> float | None:
        return 0.0 if name in self.unseen else self.values.age(name)

    def is_stale(self, name: str) -> bool:
        return False if name in self.unseen else self.values.is_stale(name)

    def unit_online(self, unit: str) -> bool:
        return self.values.unit_online(unit)


def waiting_for(guard: Guard, values: Values, signals: Collection[str]) -> list[str]:
    """What a holding guard waits for at the start of a run: its readings (and signals) not seen once yet.

    Empty when its hold means something: a unit it reads is offline, a reading that had arrived went
    stale, or its condition is true whatever the missing readings turn out to be.
    """
    if any(not values.unit_online(u) for u in guard_units(guard)):
        return []
    reads = _reads(guard, signals)
    unseen = [n for n in reads if values.age(n) is None]
    if not unseen or any(values.is_stale(n) for n in reads if n not in unseen):
        return []
    try:
        if guard.condition.evaluate(_FirstReadings(values, unseen)):
            return []
    except EvaluationError:
        pass
    return unseen
