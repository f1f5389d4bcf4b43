"""Keeps a module's driver alive: INIT, run, fault to ERROR, restart with capped backoff.

A driver that crashes or loses its device puts only its own module in ERROR;
the other modules of the unit never notice. When the device comes back the
module passes CLEARING to IDLE by itself (or back to ESTOPPED if an ESTOP is
latched: nothing restarts by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from edge.driver import Driver
from edge.slm import Module
from edge.waiting import sleep_or_event
from lecis.errors import DeviceError
from lecis.states import LecisState

log = logging.getLogger("labedge.module")
S = LecisState

INITIAL_BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0  # a returning device is back in IDLE well within 10 s


async def wait_event_or(module: Module, seconds: float | None) -> None:
    """Sleep `seconds` on the module's clock, or until its wake event is set."""
    await sleep_or_event(module.clock, module.wake, seconds)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, DeviceError):
        return exc.code, exc.message
    return "driver_crash", f"driver crashed: {type(exc).__name__}: {exc}"


async def supervise(
    module: Module, initial_backoff_s: float = INITIAL_BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S
) -> None:
    """Run until the module is stopped; never raises (except cancellation)."""
    backoff = initial_backoff_s
    while not module.stopping:
        if module.sm.state is S.POWERED_UP and not module.auto_init and not module.pending:
            await wait_event_or(module, None)  # wait for INIT
            continue
        module.restart_requested = False
        if module.sm.state is S.POWERED_UP:
            module.transition("INIT")
        elif module.sm.state is S.ERROR:
            module.transition("CLEAR")
        driver = None
        try:
            driver = module.factory(module.dcd, module, module.resources)
            await driver.initialize()
        except Exception as exc:
            if driver is not None:
                _safe(module, driver)
                await _close(module, driver)
            code, message = describe_failure(exc)
            if not isinstance(exc, DeviceError):
                log.error("%s/%s driver failed to start", module.unit, module.id, exc_info=exc)
            module.fault(code, message)
            module.settle_pending(False, f"{module.id} is in ERROR: {message}")
            await wait_event_or(module, backoff)
            backoff = min(backoff * 2, max_backoff_s)
            continue
        module.driver = driver
        backoff = initial_backoff_s
        if module.sm.state is S.INITIALIZING:
            module.transition("init_ok")
        elif module.sm.state is S.CLEARING:
            module.transition("clear_ok")
        if module.estop_latched and module.sm.state is S.IDLE:
            _safe(module, driver)
            module.transition("ESTOP")
        module.settle_pending(True)
        failure = await _run_until_restart(module)
        module._stop_running("driver restart")
        module.driver = None
        await _close(module, driver)
        if failure is not None:
            code, message = describe_failure(failure)
            if not isinstance(failure, DeviceError):
                log.error("%s/%s driver crashed", module.unit, module.id, exc_info=failure)
            module.fault(code, message)
        if module.sm.state is S.ERROR:
            await wait_event_or(module, backoff)
            backoff = min(backoff * 2, max_backoff_s)


async def _run_until_restart(module: Module) -> BaseException | None:
    """Run the driver's background loop until it fails or a restart is asked for."""
    assert module.driver is not None
    run: asyncio.Future[Any] = asyncio.ensure_future(module.driver.run())
    wake: asyncio.Future[Any] | None = None
    try:
        while True:
            wake = asyncio.ensure_future(module.wake.wait())
            await asyncio.wait([run, wake], return_when=asyncio.FIRST_COMPLETED)
            wake.cancel()
            if module.restart_requested or module.stopping:
                module.wake.clear()
                return None
            module.wake.clear()
            if run.done():
                if run.cancelled():
                    return None
                exc = run.exception()
                if exc is not None:
                    return exc
                # A driver with nothing to do in the background: wait for a restart or stop.
                run = asyncio.ensure_future(asyncio.get_running_loop().create_future())
    finally:
        # Also when the supervisor itself is cancelled: never leave the driver's loop running.
        if wake is not None:
            wake.cancel()
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run


def _safe(module: Module, driver: Driver) -> None:
    try:
        driver.safe()
    except Exception:  # logged; the module goes on to ERROR or ESTOPPED all the same
        log.exception("%s/%s driver could not drive its outputs safe", module.unit, module.id)


async def _close(module: Module, driver: object) -> None:
    try:
        await driver.close()  # type: ignore[attr-defined]
    except Exception:
        log.exception("%s/%s driver did not close cleanly", module.unit, module.id)
