"""One safety action on every module, whatever one of them does."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

log = logging.getLogger("labedge.safety")


class HasId(Protocol):
    id: str


M = TypeVar("M", bound=HasId)


def on_every_module(modules: Iterable[M], act: Callable[[M], None], what: str) -> list[str]:
    """`act(module)` for each module; returns the ids whose action raised (logged, never re-raised).

    A failure in one module (a driver bug, a disk error while recording) must not
    leave the modules after it running.
    """
    failed = []
    for module in modules:
        try:
            act(module)
        except Exception:
            log.exception("module %s: %s raised; carrying on with the others", module.id, what)
            failed.append(module.id)
    return failed
