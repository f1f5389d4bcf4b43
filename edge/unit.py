"""The edge unit process: its modules, outbox, lease, buttons and broker link, opened in one place."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt

from edge.driver import DriverResources, Reading
from edge.durable import DurableState, alarm_every
from edge.forwarder import Forwarder
from edge.lease import LeaseEnd, LeaseManager
from edge.module_supervisor import supervise
from edge.mqtt_link import BrokerLink
from edge.outbox import Outbox
from edge.replies import Replier, ReplyLog
from edge.safety.estop import estop_all
from edge.safety.lease_loss import apply_loss_policy
from edge.safety.shutdown import EXIT_FAULT, EXIT_OK, all_safe, last_word
from edge.safety.tasks import TaskSupervisor
from edge.slm import DriverFactory, Module
from edge.unit_messages import handle_message
from edge.unit_parts import UnitExtra, UnitLink
from lecis.clock import Clock, SystemClock, iso_ts
from lecis.commands import ReplyStatus
from lecis.errors import LabedgeError
from lecis.mqtt_session import Connection
from lecis.states import LecisState
from lecis.topics import Topics
from lecis.unit_config import UnitConfig
from lecis.version import software_version
from lecis.wire import to_bytes

log = logging.getLogger("labedge.unit")


def default_factory(dcd: Any, host: Any, resources: DriverResources) -> Any:
    from edge.drivers.registry import driver_class

    return driver_class(dcd.driver)(dcd, host, resources)


def dumps(payload: dict[str, Any]) -> bytes:
    """Contract JSON bytes, built by the one encoder (lecis.wire: never fails on a lone surrogate)."""
    return to_bytes(payload)


LinkFactory = Callable[["Unit"], UnitLink]
# What recording into the outbox may raise when the disk is full or gone (part of no safety path).
RECORD_ERRORS = (LabedgeError, OSError, sqlite3.Error)


class Unit:
    """One edge unit. `await unit.run()` until `unit.stop()`; outputs are safe on the way out.

    `async with unit:` opens the outbox, starts the modules, extras, lease timer
    and broker link (each supervised), and on the way out drives outputs safe and
    closes them in reverse. `link_factory(unit)` replaces the broker link (tests).
    `run()` returns the process exit status: 0, or EXIT_FAULT when a task died
    beyond repair.
    """

    def __init__(
        self,
        config: UnitConfig,
        clock: Clock | None = None,
        resources: DriverResources | None = None,
        factory: DriverFactory = default_factory,
        auto_init: bool = True,
        link_factory: LinkFactory | None = None,
    ) -> None:
        self.config = config
        self.id = config.unit
        self.unit = config.unit
        self.clock = clock or SystemClock()
        self.resources = resources or DriverResources()
        self.topics = Topics(config.topic_root)
        self.boot = str(uuid.uuid4())
        self.lease = LeaseManager(self.clock, config.max_lease_ttl_s, self._controller_lost)
        # Replies by id and pump volume survive restarts (edge.durable, docs/durable.md).
        self.durable = DurableState(Path(config.data_dir) / "durable.sqlite3", self.clock)
        self.resources.durable = self.durable
        self.durable.on_error = alarm_every(lambda: self.modules.values())
        self.replies = ReplyLog(store=self.durable)
        self.modules = {
            dcd.module: Module(dcd, factory, self, self.resources, auto_init) for dcd in config.modules
        }
        self.outbox = Outbox(Path(config.data_dir) / "outbox.sqlite3", config.outbox.max_messages,
                             config.outbox.sync_interval_s, on_problem=self.outbox_problem)
        self.forwarder = Forwarder(self.outbox, self.topics, self.id)
        self.link: UnitLink = (link_factory or _broker_link)(self)
        self.ready = asyncio.Event()  # every module has finished its first INIT attempt
        self._stop = asyncio.Event()
        self.extras: list[UnitExtra] = []  # buttons, LED: started and closed with the unit
        self.lease.changed = self._lease_changed
        self.tasks = TaskSupervisor(self.clock, self.fail)
        self.exit_code = EXIT_OK
        self.failure: str | None = None
        self.record_failures = 0  # messages not recorded since the outbox last worked
        self._stack: contextlib.AsyncExitStack | None = None

    # ---- services for modules -----------------------------------------------------------------
    def record(self, module: str, kind: str, body: dict[str, Any]) -> None:
        """Store a data or event message for the broker; never raises (safety paths call it).

        A disk that is full or gone costs the message, logged once per episode,
        never the safety action that wanted to record it.
        """
        try:
            self._record(module, kind, body)
        except RECORD_ERRORS as exc:
            if self.record_failures == 0:
                log.error("cannot record %s/%s in the outbox (%s); the unit goes on without recording "
                          "until the outbox works again", module, kind, exc)
            self.record_failures += 1
            return
        if self.record_failures:
            log.warning("the outbox records again; %d message(s) were lost meanwhile", self.record_failures)
            self.record_failures = 0

    def _record(self, module: str, kind: str, body: dict[str, Any]) -> None:
        self.outbox.append(module, kind, body)  # type: ignore[arg-type]
        self.forwarder.notify()

    def outbox_problem(self, code: str, message: str) -> None:
        """The outbox dropped messages or cannot write (outbox_full, disk_full, outbox_write_failed).

        An alarm event of every module (each module's seq gap is explained in its own
        stream), best effort: it waits in the outbox's memory like any message.
        """
        log.error("outbox: %s", message)
        ts = iso_ts(self.clock.now())
        for module in self.modules:
            self.record(module, "event", {"ts": ts, "level": "alarm", "code": code, "message": message})

    def publish_module_state(self, module: Module) -> None:
        self.link.publish(self.topics.module_state(self.id, module.id), dumps(module.state_payload()), True)
        self._update_led()

    def latest(self, module: str) -> Reading | None:
        target = self.modules.get(module)
        return target.latest_reading if target else None

    def send_reply(self, topic: str, payload: dict[str, Any]) -> None:
        try:
            data = dumps(payload)
        except (ValueError, TypeError) as exc:  # never expected: parse_command refuses what cannot encode
            log.error("reply on %s cannot be encoded (%s); sending a bare rejection", topic, exc)
            data = dumps({"id": None, "status": ReplyStatus.REJECTED.value, "result": {},
                          "error": {"kind": "execution", "param": None,
                                    "message": "the unit could not encode its reply"},
                          "ts": iso_ts(self.clock.now())})
        self.link.publish(topic, data)

    def quiet_replier(self) -> Replier:
        return Replier(lambda topic, payload: None, ReplyLog(1), self.clock, "", None)

    # ---- incoming ------------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        """Route one incoming message; never raises: the link must go on serving ESTOP."""
        handle_message(self, topic, payload)

    # ---- unit state ----------------------------------------------------------------------------
    def _unit_state_payload(self, state: str) -> bytes:
        return dumps({"state": state, "boot": self.boot, "ts": iso_ts(self.clock.now())})

    def birth_payload(self) -> dict[str, Any]:
        return {
            "unit": self.id,
            "version": software_version(),
            "boot": self.boot,
            "ts": iso_ts(self.clock.now()),
            "modules": {mid: m.dcd.describe() for mid, m in self.modules.items()},
            "outbox": {"max_messages": self.config.outbox.max_messages},
            "lease": {"max_ttl_s": self.config.max_lease_ttl_s},
        }

    def status(self) -> dict[str, Any]:
        return {
            "unit": self.id,
            "boot": self.boot,
            "lease": self.lease.describe(),
            "outbox": {"pending": self.outbox.count()},
            "modules": {mid: m.state_payload() for mid, m in self.modules.items()},
        }

    async def _on_connect(self, connection: Connection) -> list[Coroutine[Any, Any, None]]:
        # Sparkplug-like order: birth, every module state, then the unit state.
        self.link.publish(self.topics.birth(self.id), dumps(self.birth_payload()), True)
        for module in self.modules.values():
            self.publish_module_state(module)
        self.link.publish(self.topics.unit_state(self.id),
                          self._unit_state_payload("ready" if self.ready.is_set() else "init"), True)
        return [self.forwarder.run(connection)]

    async def _announce_ready(self) -> None:
        while any(m.state in (LecisState.POWERED_UP, LecisState.INITIALIZING) and m.auto_init
                  for m in self.modules.values()):
            await self.clock.sleep(0.05)
        self.ready.set()
        self.link.publish(self.topics.unit_state(self.id), self._unit_state_payload("ready"), True)

    # ---- safety --------------------------------------------------------------------------------
    def estop(self, reason: str) -> None:
        """ESTOP of the whole unit: works with or without the network (edge.safety.estop)."""
        estop_all(self.modules.values(), reason)

    def _controller_lost(self, holder: str, how: LeaseEnd = "expired") -> None:
        apply_loss_policy(self.modules.values(), holder, how)

    def _lease_changed(self) -> None:
        self._update_led()

    def _update_led(self) -> None:
        for extra in self.extras:
            try:
                extra.unit_changed(self)
            except Exception:  # an LED must never get in the way of a state change
                log.exception("extra %s failed to follow the unit's state", type(extra).__name__)

    def all_safe(self) -> None:
        all_safe(self.modules.values(), "unit shutting down")

    # ---- life ----------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def fail(self, reason: str) -> None:
        """A part of the unit failed beyond repair: stop with outputs safe and a non-zero exit."""
        if self.failure is None:
            self.failure = reason
            self.exit_code = EXIT_FAULT
        self.all_safe()  # now, not only once the exit stack unwinds
        self._stop.set()

    async def run(self) -> int:
        """Run until `stop()` or a fatal fault; returns the exit status for the process."""
        async with self:
            await self._stop.wait()
        return self.exit_code

    async def __aenter__(self) -> Unit:
        async with contextlib.AsyncExitStack() as stack:
            Path(self.config.data_dir).mkdir(parents=True, exist_ok=True)
            self.outbox.open()
            stack.callback(self.outbox.close)
            self.durable.open()
            stack.callback(self.durable.close)
            for topic, failed in self.replies.restore(self.clock):  # left running by the last process
                self.link.publish(topic, dumps(failed), hold=True)
            stack.push_async_callback(self._close_drivers)
            stack.callback(self.all_safe)
            stack.push_async_callback(self.tasks.close)
            for module in self.modules.values():
                self.tasks.start(f"module-{module.id}", functools.partial(supervise, module))
            for extra in self.extras:
                await extra.start()
                stack.push_async_callback(extra.close)
            self.tasks.start("lease", self.lease.watch)
            self.tasks.start("outbox-sync", self._sync_outbox)
            self.tasks.start("ready", self._announce_ready, forever=False)
            self.tasks.start("link", self.link.run)
            stack.push_async_callback(self._shutdown)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _close_drivers(self) -> None:
        for module in self.modules.values():
            driver, module.driver = module.driver, None
            if driver is not None:
                try:
                    await driver.close()
                except Exception:
                    log.exception("%s/%s driver did not close cleanly", self.id, module.id)

    async def _shutdown(self) -> None:
        """Outputs to safe, the last states published and confirmed, then disconnect."""
        self.tasks.closing = True  # what ends from here on is not restarted
        self.all_safe()
        for module in self.modules.values():
            module.stopping = True
            with contextlib.suppress(LabedgeError):
                module.sm.apply("shutdown")
            with contextlib.suppress(Exception):
                self.publish_module_state(module)
        state = self._unit_state_payload("disconnected" if self.failure is None else "lost")
        if self.link.connected.is_set():
            self.link.publish(self.topics.unit_state(self.id), state, True)
            await self.link.flush(timeout=2.0)
        elif self.failure is not None:
            await last_word(self.config.broker, self.topics.unit_state(self.id), state)
        self.link.stop()
        await self.tasks.wait("link", timeout=3.0)

    async def _sync_outbox(self) -> None:
        while True:
            await self.clock.sleep(self.config.outbox.sync_interval_s)
            try:
                self.outbox.sync()
            except RECORD_ERRORS as exc:  # a full disk: keep running, try again next time
                log.warning("outbox could not be flushed to disk: %s", exc)


def _broker_link(unit: Unit) -> BrokerLink:
    return BrokerLink(
        unit.config.broker,
        client_id=f"labedge-unit-{unit.id}",
        will=aiomqtt.Will(unit.topics.unit_state(unit.id), unit._unit_state_payload("lost"), 1, True),
        subscriptions=[unit.topics.module_cmd_filter(unit.id), unit.topics.unit_cmd(unit.id)],
        on_connect=unit._on_connect,
        on_message=unit.on_message,
        clock=unit.clock,
    )
