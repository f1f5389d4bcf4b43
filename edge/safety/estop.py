"""ESTOP of the whole unit: every module's outputs safe, whatever one module does."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger("labedge.safety")


class Stoppable(Protocol):
    id: str

    def estop(self, reason: str) -> None: ...


def estop_all(modules: Iterable[Stoppable], reason: str) -> list[str]:
    """ESTOP every module; returns the ids of modules whose ESTOP raised (logged, never re-raised).

    A failure in one module (a driver bug, a disk error while recording) must not
    leave the modules after it running.
    """
    failed = []
    for module in modules:
        try:
            module.estop(reason)
        except Exception:
            log.exception("ESTOP of module %s raised; carrying on with the others", module.id)
            failed.append(module.id)
    return failed
