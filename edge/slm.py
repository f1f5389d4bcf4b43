"""A Standard Laboratory Module: one driver under the LECIS state model.

The module owns the state, the command checks (known command, lease, state,
arguments, in that order), the replies and the safety reactions (ESTOP,
ABORT, loss of controller). Its driver's life (init, run, crash, restart
with backoff) is looked after by `edge.module_supervisor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol

from edge.command_run import RunHandle
from edge.device_runs import run_instant, run_timed
from edge.driver import Driver, DriverResources, Reading
from edge.lease import Lease, LeaseManager
from edge.replies import Replier
from lecis.clock import Clock, iso_ts
from lecis.command_check import check_arguments, resolve_command
from lecis.commands import Command, ReplyStatus
from lecis.dcd import Dcd
from lecis.errors import CommandStateForbidden
from lecis.states import (
    LEASE_FREE,
    Control,
    LecisState,
    StateMachine,
    check_command_allowed,
)

log = logging.getLogger("labedge.module")
S = LecisState

DriverFactory = Callable[[Dcd, Any, DriverResources], Driver]


class UnitServices(Protocol):
    """What a module needs from its unit."""

    unit: str
    clock: Clock
    lease: LeaseManager

    def record(self, module: str, kind: str, body: dict[str, Any]) -> None: ...

    def publish_module_state(self, module: Module) -> None: ...

    def latest(self, module: str) -> Reading | None: ...


class Module:
    """One module of a unit; also the `ModuleHost` its driver reports to."""

    def __init__(
        self,
        dcd: Dcd,
        factory: DriverFactory,
        services: UnitServices,
        resources: DriverResources,
        auto_init: bool = True,
    ) -> None:
        self.dcd = dcd
        self.id = dcd.module
        self.factory = factory
        self.services = services
        self.resources = resources
        self.auto_init = auto_init
        self.unit = services.unit
        self.clock = services.clock
        self.sm = StateMachine()
        self.driver: Driver | None = None
        self.latest_reading: Reading | None = None
        self.estop_latched = False
        self.run_handle: RunHandle | None = None
        self.running_command: Command | None = None
        self.generation = 0  # bumped by ESTOP/ABORT/RESET/lease loss: stale queued work is dropped
        self.pending: list[Replier] = []  # INIT / CLEAR / RESET replies waiting for the driver
        self.wake = asyncio.Event()  # supervisor: retry or restart now
        self.restart_requested = False
        self.stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_outputs: dict[str, Any] = {}
        self._state_held = False
        self._state_due = False

    # ---- ModuleHost, for the driver -------------------------------------------------------------
    def reading(self, values: dict[str, float], ts: datetime | None = None) -> None:
        moment = ts or self.clock.now()
        self.latest_reading = Reading(moment, dict(values))
        self._record("data", {"readings": [{"ts": iso_ts(moment), "values": values}]})

    def event(self, level: str, code: str, message: str) -> None:
        log.log(logging.WARNING if level != "info" else logging.INFO, "%s/%s %s: %s",
                self.unit, self.id, code, message)
        body = {"ts": iso_ts(self.clock.now()), "level": level, "code": code, "message": message}
        self._record("event", body)

    def _record(self, kind: str, body: dict[str, Any]) -> None:
        # Safety paths record after acting (fault, loss of controller, limits): a recording that
        # fails costs the record, never the rest of the path.
        try:
            self.services.record(self.id, kind, body)
        except Exception:
            log.exception("%s/%s could not record a %s message", self.unit, self.id, kind)

    def outputs_changed(self) -> None:
        self.publish_state()

    def latest(self, module: str) -> Reading | None:
        return self.services.latest(module)

    # ---- state ------------------------------------------------------------------------------
    @property
    def state(self) -> LecisState:
        return self.sm.state

    def outputs(self) -> dict[str, Any]:
        if self.driver is not None:
            self._last_outputs = self.driver.outputs()
        return self._last_outputs

    def state_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "lecis": self.sm.state.value,
            "control": self.sm.control.value,
            "outputs": self.outputs(),
            "error": self.sm.error.to_json() if self.sm.error else None,
            "ts": iso_ts(self.clock.now()),
        }
        if self.running_command is not None:
            payload["command"] = {"id": self.running_command.id, "cmd": self.running_command.cmd}
        return payload

    def publish_state(self) -> None:
        if self._state_held:  # inside one_state(): published once, at its end
            self._state_due = True
            return
        self.services.publish_module_state(self)

    @contextlib.contextmanager
    def one_state(self) -> Iterator[None]:
        """Publish the retained state once, after a change of outputs and LECIS state made together."""
        self._state_held, self._state_due = True, False
        try:
            yield
        finally:
            self._state_held = False
            if self._state_due:
                self.publish_state()

    def transition(self, event: str) -> None:
        before = self.sm.state
        self.sm.apply(event)
        if self.sm.state is not before:
            log.info("%s/%s %s -> %s (%s)", self.unit, self.id, before.value, self.sm.state.value, event)
        self.publish_state()

    def fault(self, code: str, message: str) -> None:
        if self.sm.state is S.SHUTDOWN:
            return
        self.sm.fault(code, message)
        log.error("%s/%s ERROR %s: %s", self.unit, self.id, code, message)
        self.publish_state()  # the state first: recording the alarm may fail with the disk
        self.event("alarm", code, message)

    def spawn(self, coro: Any, reply: Replier) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._command_ended(done, reply))

    def _command_ended(self, task: asyncio.Task[None], reply: Replier) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # A bug past the command's own handlers: outputs safe, the module to ERROR, logged,
        # and the controller still gets its final reply.
        exc = task.exception()
        log.error("%s/%s command task failed", self.unit, self.id, exc_info=exc)
        message = f"command failed unexpectedly: {type(exc).__name__}: {exc}"
        try:
            self.driver_failed("driver_crash", message)
        except Exception:
            log.exception("%s/%s could not go to ERROR after a failed command", self.unit, self.id)
        try:
            reply.failed(message)  # ignored if the command had already answered finally
        except Exception:
            log.exception("%s/%s could not answer a failed command", self.unit, self.id)

    # ---- commands ---------------------------------------------------------------------------
    def check(self, command: Command) -> tuple[str, bool, dict[str, Any], Lease | None]:
        """Run the contract's checks in order; return (name, standard, args, lease).

        The first and last checks are lecis.command_check's, which the hub runs against `$birth`.
        """
        resolved = resolve_command(self.id, self.dcd.commands, command.cmd)
        name = resolved.name
        lease = None if name in LEASE_FREE else self.services.lease.verify(command.lease)
        check_command_allowed(self.sm.state, self.sm.control, name, resolved.standard)
        args = check_arguments(resolved, command.args).args
        if resolved.standard:
            return name, True, {}, lease
        if self.driver is None:
            raise CommandStateForbidden(f"{self.id} has no working driver right now; wait for IDLE")
        self.driver.check(name, args)
        return name, False, args, lease

    def handle(self, command: Command, reply: Replier) -> None:
        """Check and start `command`; raises CommandRejected for the caller to answer."""
        name, standard, args, lease = self.check(command)
        if lease is not None:
            self.services.lease.extend(lease)
        if standard:
            self._standard(name, reply)
        elif self.driver is not None and name in type(self.driver).timed_commands:
            self._start_timed(command, name, args, reply)
        else:
            self.spawn(run_instant(self, name, args, reply, self.generation), reply)

    def _standard(self, name: str, reply: Replier) -> None:
        if name == "STATUS":
            reply(ReplyStatus.DONE, result=self.state_payload())
        elif name == "ESTOP":
            self.estop("ESTOP command")
            reply(ReplyStatus.DONE, result={"lecis": self.sm.state.value})
        elif name == "ABORT":
            self.abort("ABORT command")
            reply(ReplyStatus.DONE, result={"lecis": self.sm.state.value})
        elif name == "PAUSE":
            self.pause()
            reply(ReplyStatus.DONE, result={"lecis": self.sm.state.value})
        elif name == "RESUME":
            self.resume()
            reply(ReplyStatus.DONE, result={"lecis": self.sm.state.value})
        elif name in ("LOCAL", "REMOTE"):
            self.sm.control = Control(name)
            self.publish_state()
            reply(ReplyStatus.DONE, result={"control": name})
        elif name == "INIT":
            reply(ReplyStatus.ACCEPTED)
            self.pending.append(reply)
            self.wake.set()
        elif name == "CLEAR":
            self.clear(reply)
        elif name == "RESET":
            reply(ReplyStatus.ACCEPTED)
            self.reset(reply)

    # ---- device commands --------------------------------------------------------------------
    def _start_timed(self, command: Command, name: str, args: dict[str, Any], reply: Replier) -> None:
        run = RunHandle(self.clock, command.id)
        self.run_handle = run
        self.running_command = command
        self.transition("start")
        reply(ReplyStatus.ACCEPTED)
        self.spawn(run_timed(self, name, args, run, reply), reply)

    # ---- safety and standard commands -------------------------------------------------------
    def _stop_running(self, reason: str) -> None:
        self.generation += 1
        if self.run_handle is not None:
            self.run_handle.abort(reason)
        if self.driver is not None:
            self.driver.safe()

    def make_safe(self, reason: str) -> None:
        """Stop what runs and drive the outputs to their safe value (the unit is going away)."""
        self._stop_running(reason)

    def estop(self, reason: str) -> None:
        """Outputs safe now, running and queued commands dropped, ESTOPPED latched."""
        if self.sm.state is S.SHUTDOWN:
            return
        self._stop_running(reason)
        self.estop_latched = True
        self.running_command = None
        self.run_handle = None
        self.transition("ESTOP")

    def abort(self, reason: str) -> None:
        self._stop_running(reason)
        self.running_command = None
        self.run_handle = None
        self.transition("ABORT")

    def pause(self) -> None:
        if self.run_handle is not None:
            self.run_handle.pause()
        with self.one_state():  # never BUSY with outputs off, nor PAUSED with outputs on
            if self.driver is not None:
                self.driver.pause()
            self.transition("PAUSE")

    def resume(self) -> None:
        with self.one_state():
            if self.driver is not None:
                self.driver.resume()
            if self.run_handle is not None:
                self.run_handle.resume()
            self.transition("RESUME")

    def clear(self, reply: Replier) -> None:
        self.estop_latched = False
        if self.sm.state is S.ESTOPPED and self.driver is not None:
            self.transition("CLEAR")
            self.transition("clear_ok")
            reply(ReplyStatus.DONE, result={"lecis": self.sm.state.value})
            return
        # ERROR, or ESTOPPED while the driver restarts: the supervisor settles it.
        reply(ReplyStatus.ACCEPTED)
        if self.sm.state is S.ESTOPPED:
            self.transition("CLEAR")
        self.pending.append(reply)
        self.wake.set()

    def reset(self, reply: Replier | None) -> None:
        self._stop_running("RESET")
        self.running_command = None
        self.run_handle = None
        self.transition("RESET")
        if reply is not None:
            self.pending.append(reply)
        self.restart_requested = True
        self.wake.set()

    def driver_failed(self, code: str, message: str) -> None:
        """A device fault outside the run loop: ERROR now, driver restarted by the supervisor."""
        self._stop_running(code)
        self.running_command = None
        self.run_handle = None
        self.fault(code, message)
        self.restart_requested = True
        self.wake.set()

    def controller_lost(self, holder: str, how: str = "expired") -> None:
        """The lease ended (`how`: expired or released): apply this module's on_controller_loss.

        The outputs are dealt with and the state published before the alarm is recorded:
        recording may fail (a full disk), the safety action must not.
        """
        if self.dcd.kind != "equipment" or self.sm.state is S.SHUTDOWN:
            return
        ended = "expired without renewal" if how == "expired" else "was released"
        if self.dcd.on_controller_loss == "off":
            busy = self.sm.state in (S.BUSY, S.PAUSED)
            self._stop_running(f"loss of controller {holder!r}")
            if busy:
                self.running_command = None
                self.run_handle = None
                self.transition("ABORT")
            self.publish_state()
            self.event("alarm", "controller_lost",
                       f"lease of {holder!r} {ended}; outputs turned off (on_controller_loss: off)")
        else:
            self.publish_state()
            self.event("alarm", "controller_lost",
                       f"lease of {holder!r} {ended}; outputs held (on_controller_loss: hold)")

    def settle_pending(self, ok: bool, message: str = "") -> None:
        replies, self.pending = self.pending, []
        for reply in replies:
            if ok:
                reply(ReplyStatus.DONE, result={"lecis": self.sm.state.value})
            else:
                reply.failed(message)
