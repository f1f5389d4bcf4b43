"""What one writer transaction gathers: rows per table, streams touched, events to announce, flushes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.recorder.ops import RecorderEvent
from hub.recorder.store import Stream


@dataclass(slots=True)
class Batch:
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    readings: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    states: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    commands: list[tuple[Any, ...]] = field(default_factory=list)
    touched: dict[int, Stream] = field(default_factory=dict)
    notify: list[RecorderEvent] = field(default_factory=list)
    flushes: list[Callable[[], None]] = field(default_factory=list)
    # (stream id, seq) stored in this batch: built only once a seq at or below a stream's last
    # arrives (a repeat or a late one), the only case that needs it.
    accepted: set[tuple[int, int]] | None = None

    def stored_here(self, stream: int, seq: int) -> bool:
        """Whether this batch already stores `seq` of `stream` (its rows are not in the database yet)."""
        if self.accepted is None:
            self.accepted = {(row[0], row[1]) for row in self.messages}
        return (stream, seq) in self.accepted

    def add_message(self, row: tuple[Any, ...]) -> None:
        self.messages.append(row)
        if self.accepted is not None:
            self.accepted.add((row[0], row[1]))
