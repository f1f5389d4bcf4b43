"""Per-task state and the runs (action sequences) of tasks, as plain JSON-able records."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Part = Literal["do", "exit"]

# Bumped by every change of a field that says when a task falls due (or how often it fired), in any
# TaskState: the engine then re-reads the earliest due time of its tasks (hub.controller.timing.task_wake)
# and the status's task part, not on every step.
changes = 0
_WAKE_FIELDS = frozenset({"dues", "done", "hold_until", "exit_pending", "fired"})
_MISSING = object()
_SCALARS = (int, float, str, bool, type(None))
_NAMES: dict[type, tuple[str, ...]] = {}


def record(obj: Any) -> dict[str, Any]:
    """`dataclasses.asdict` of a record of scalars and lists or dicts of them: the same dict, made
    without asdict's generic recursion (a snapshot is taken before every command goes out)."""
    names = _NAMES.get(type(obj))
    if names is None:
        names = _NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    return {name: _plain(getattr(obj, name)) for name in names}


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if type(value) is list:
        return [_plain(v) for v in value]
    if type(value) is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


@dataclass
class TaskState:
    """What a task remembers between firings (persisted in the snapshot)."""

    fired: int = 0
    dues: list[float] = field(default_factory=list)  # timer due times, sorted
    done: bool = False  # an `at` that fired, an `every` past its window or until
    truth: bool = False  # `when`/`while`: the condition's value at the last evaluation
    hold_until: float | None = None  # `when ... for`: fires then if still true
    inside: bool = False  # `while`: inside the block
    exit_pending: bool = False  # `while`: on_exit due but not yet started
    last_fired: float | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WAKE_FIELDS and self.__dict__.get(name, _MISSING) != value:
            global changes
            changes += 1
        object.__setattr__(self, name, value)

    def to_json(self) -> dict[str, Any]:
        return record(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskState:
        return cls(**data)


@dataclass
class TaskRun:
    """One running sequence of a task's actions (`do`, or a `while`'s `on_exit`)."""

    id: int
    task: str
    part: Part
    index: int = 0  # the next action to start (or the one in flight)
    wait_until: float | None = None
    command: dict[str, Any] | None = None  # the command in flight: CommandEffect fields
    version: int = 0  # script version it started under
    ending: bool = False  # its task was changed or removed: end after the command in flight

    def to_json(self) -> dict[str, Any]:
        return record(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRun:
        return cls(**data)
