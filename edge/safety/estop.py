"""ESTOP of the whole unit: every module's outputs safe, whatever one module does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from edge.safety.every_module import on_every_module


class Stoppable(Protocol):
    id: str

    def estop(self, reason: str) -> None: ...


def estop_all(modules: Iterable[Stoppable], reason: str) -> list[str]:
    """ESTOP every module; returns the ids of modules whose ESTOP raised (logged, never re-raised)."""
    return on_every_module(modules, lambda module: module.estop(reason), "ESTOP")
