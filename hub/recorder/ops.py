"""What the event loop hands the writer thread besides records: runs, sessions, effects, flushes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.controller.effects import Effect, Outcome
from lecis.wire import Birth


@dataclass(frozen=True, slots=True)
class OpenRun:
    run_id: str
    kind: str  # "run" or "session"
    units: frozenset[str] | None
    meta: Mapping[str, Any]
    births: Mapping[str, Birth]
    started_at: float


@dataclass(frozen=True, slots=True)
class CloseRun:
    run_id: str
    ended_at: float


@dataclass(frozen=True, slots=True)
class EffectOp:
    run_id: str
    effect: Effect
    ts: float
    outcome: Outcome | None


@dataclass(frozen=True, slots=True)
class VersionOp:
    run_id: str
    version: int
    text: str
    author: str
    ts: float
    diff: str


@dataclass(frozen=True, slots=True)
class Flush:
    """Done once everything queued before it is in the database and the files."""

    done: Callable[[], None] = field(compare=False)


@dataclass(frozen=True)
class RecorderEvent:
    """An event the recorder itself raises (`readings_lost`, `disk_full`, `recording_resumed`, ...)."""

    level: str
    code: str
    message: str
    ts: float
    unit: str | None = None
    module: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
