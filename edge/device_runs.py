"""Carrying out one device command on a module's driver, and answering it finally.

An instant command (`on`, `off`, an instrument query) answers `done` or
`failed`; a timed one (`run`, `dose`, `pulse`) has answered `accepted` already
and answers `running`, then `done` or `failed`, leaving BUSY/PAUSED when it
ends. A device fault or a driver bug puts the module in ERROR (outputs safe,
the driver restarted by its supervisor) and never reaches the unit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edge.command_run import RunHandle
from edge.driver import CommandAborted
from edge.replies import Replier
from lecis.commands import ReplyStatus
from lecis.errors import CommandFailed, CommandRejected, DeviceError
from lecis.states import LecisState

if TYPE_CHECKING:
    from edge.slm import Module

log = logging.getLogger("labedge.module")


def _driver_fault(module: Module, name: str, exc: Exception) -> str:
    """Put the module in ERROR for `exc`; return the message for the failed reply."""
    if isinstance(exc, DeviceError):
        module.driver_failed(exc.code, exc.message)
        return f"{name} failed: {exc.message}"
    log.error("%s/%s driver crashed in %s", module.unit, module.id, name, exc_info=exc)
    module.driver_failed("driver_crash", f"{type(exc).__name__}: {exc}")
    return f"{name} failed: driver crashed ({type(exc).__name__}: {exc})"


async def run_instant(module: Module, name: str, args: dict[str, Any], reply: Replier,
                      generation: int) -> None:
    driver = module.driver
    if generation != module.generation or driver is None:
        reply.failed(f"{name} dropped: the module was stopped before it ran")
        return
    try:
        result = await driver.execute(name, args, RunHandle(module.clock, reply.command_id or ""))
    except CommandFailed as exc:
        reply(ReplyStatus.FAILED, exc.to_error())
    except CommandRejected as exc:  # the device itself refused it (a board's ERR): nothing moved
        reply(ReplyStatus.REJECTED, exc.to_error())
    except Exception as exc:  # a device fault or a driver bug must not take the unit down
        reply.failed(_driver_fault(module, name, exc))
    else:
        # The driver published its output change already: one retained state per change.
        reply(ReplyStatus.DONE, result=result)


async def run_timed(module: Module, name: str, args: dict[str, Any], run: RunHandle, reply: Replier) -> None:
    driver = module.driver
    assert driver is not None
    reply(ReplyStatus.RUNNING, result={"cmd": name, "args": args})
    result: dict[str, Any] | None = None
    failure = f"{name} did not finish"
    try:
        if run.abort_reason is not None:  # stopped before it started: nothing may move
            raise CommandAborted(run.abort_reason)
        result = await driver.execute(name, args, run)
    except CommandAborted as exc:
        failure = f"{name} stopped by {exc}"
    except CommandFailed as exc:
        failure = exc.message
    except Exception as exc:
        failure = _driver_fault(module, name, exc)
    finally:
        if module.run_handle is run:
            module.run_handle = None
            module.running_command = None
            if module.sm.state in (LecisState.BUSY, LecisState.PAUSED):
                module.transition("done" if module.sm.state is LecisState.BUSY else "ABORT")
    if result is not None:
        reply(ReplyStatus.DONE, result=result)
    else:
        reply.failed(failure)
