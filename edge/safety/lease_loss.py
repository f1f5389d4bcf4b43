"""The lease ended (expired or released): each module applies its `on_controller_loss` policy.

Called by `edge.lease.LeaseManager` synchronously, before the lease can be
granted to anyone else; see docs/protocol.md "The lease".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from edge.safety.every_module import on_every_module

log = logging.getLogger("labedge.safety")


class LossAware(Protocol):
    id: str

    def controller_lost(self, holder: str, how: str) -> None: ...


def apply_loss_policy(modules: Iterable[LossAware], holder: str, how: str) -> None:
    """Every module applies its policy; one that raises is logged and the rest still run."""
    log.warning("lease of %r %s; applying on_controller_loss", holder, how)
    on_every_module(modules, lambda module: module.controller_lost(holder, how), "on_controller_loss")
