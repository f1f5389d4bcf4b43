"""What the controller's engine asks the world to do, and what the world tells it back.

The engine (`hub.controller.engine`) is a pure state machine: inputs are
readings, unit presence, command outcomes and the passing of time; outputs
are these effects. The runner carries them out against a `Plant` (units over
MQTT in the hub, the simulated vessel in `labedge hub simulate`) and records
them. Times are UTC epoch seconds (float) from the injected clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from hub.script.model import Value


@dataclass(frozen=True)
class Reading:
    """One reading of one module, as the unit stamped it."""

    unit: str
    module: str
    ts: float  # epoch seconds of the reading's own timestamp
    values: Mapping[str, float]
    seq: int | None = None


@dataclass(frozen=True)
class CommandEffect:
    """Send a command; the outcome comes back through `Engine.on_outcome(effect_id, ...)`."""

    effect_id: str
    unit: str
    module: str | None
    cmd: str
    args: Mapping[str, Value]
    origin: str  # "task:NAME", "loop:NAME", "guard:NAME", "stop", "manual"


@dataclass(frozen=True)
class LogEffect:
    level: Literal["info", "warning", "alarm"]
    code: str  # e.g. "log", "task_fired", "guard_hold", "stale_reading", "command_failed"
    message: str
    origin: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionEffect:
    action: Literal["start", "stop"]
    unit: str
    name: str | None
    origin: str


@dataclass(frozen=True)
class DerivedEffect:
    """A derived signal's new value: recorded like a reading (module `signals`)."""

    name: str
    ts: float
    value: float


Effect = CommandEffect | LogEffect | SessionEffect | DerivedEffect


@dataclass(frozen=True)
class Outcome:
    """The final answer to a command: `done`, `failed`, `rejected`, or `timeout` when none came."""

    status: Literal["done", "failed", "rejected", "timeout"]
    error: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"


class Plant(Protocol):
    """The units the script runs against."""

    async def command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value],
                      command_id: str | None = None) -> Outcome:
        """Send with the controller's lease and wait for the final reply.

        `command_id` (the CommandEffect's effect_id) goes on the wire as the command's `id`: a
        command re-sent after a hub restart carries the same id, so the unit answers it from its
        duplicate detection instead of executing it twice. None: the plant picks a fresh id.
        """


class Sink(Protocol):
    """Where a run's effects and script versions are recorded (the recorder's `sink(run_id)`)."""

    def effect(self, effect: Effect, ts: float, outcome: Outcome | None) -> None:
        """One effect as it was carried out (`outcome` None) or answered (a CommandEffect's outcome)."""

    def script_version(self, version: int, text: str, author: str, ts: float, diff: str) -> None:
        """A version of the script that became the running one; `diff` is unified text (empty for v1)."""
