"""The parts a unit is built from, as typed protocols, so tests can hand in their own.

`UnitLink` is what the unit needs of its broker connection (`edge.mqtt_link.BrokerLink`
in production, a fake in tests of routing and dedupe); `UnitExtra` is something
started and closed with the unit that follows its state (buttons, status LED).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge.unit import Unit


class UnitLink(Protocol):
    connected: asyncio.Event

    async def run(self) -> None:
        """Keep a session with the broker until `stop()`; may raise, the unit restarts it."""

    def publish(self, topic: str, payload: bytes, retain: bool = False, hold: bool = False) -> None: ...

    async def flush(self, timeout: float = 2.0) -> None: ...

    def stop(self) -> None: ...


class UnitExtra(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def unit_changed(self, unit: Unit) -> None:
        """Called whenever a module state or the lease changes (keep it quick, never raise)."""
