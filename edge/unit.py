"""The edge unit process: its modules, outbox, lease, buttons and broker link, opened in one place."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiomqtt

from edge.driver import DriverResources, Reading
from edge.forwarder import Forwarder
from edge.lease import LeaseManager
from edge.module_supervisor import supervise
from edge.mqtt_link import BrokerLink
from edge.outbox import Outbox
from edge.replies import Replier, ReplyLog
from edge.slm import DriverFactory, Module
from edge.unit_commands import handle_unit_command
from lecis.clock import Clock, SystemClock, iso_ts
from lecis.commands import CommandPayloadInvalid, ReplyStatus, parse_command
from lecis.errors import CommandRejected
from lecis.states import LecisState
from lecis.topics import MODULE_ID, UNIT_CMD, Topics
from lecis.unit_config import UnitConfig

log = logging.getLogger("labedge.unit")
VERSION = "0.1.0"


def default_factory(dcd: Any, host: Any, resources: DriverResources) -> Any:
    from edge.drivers.registry import driver_class

    return driver_class(dcd.driver)(dcd, host, resources)


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class Unit:
    """One edge unit. `await unit.run()` until `unit.stop()`; outputs are safe on the way out."""

    def __init__(
        self,
        config: UnitConfig,
        clock: Clock | None = None,
        resources: DriverResources | None = None,
        factory: DriverFactory = default_factory,
        auto_init: bool = True,
    ) -> None:
        self.config = config
        self.id = config.unit
        self.unit = config.unit
        self.clock = clock or SystemClock()
        self.resources = resources or DriverResources()
        self.topics = Topics(config.topic_root)
        self.boot = str(uuid.uuid4())
        self.lease = LeaseManager(self.clock, config.max_lease_ttl_s, self._controller_lost)
        self.replies = ReplyLog()
        self.modules = {
            dcd.module: Module(dcd, factory, self, self.resources, auto_init) for dcd in config.modules
        }
        self.outbox = Outbox(Path(config.data_dir) / "outbox.sqlite3", config.outbox.max_messages,
                             config.outbox.sync_interval_s)
        self.forwarder = Forwarder(self.outbox, self.topics, self.id)
        self.link = BrokerLink(
            config.broker,
            client_id=f"labedge-unit-{self.id}",
            will=aiomqtt.Will(self.topics.unit_state(self.id), self._unit_state_payload("lost"), 1, True),
            subscriptions=[self.topics.module_cmd_filter(self.id), self.topics.unit_cmd(self.id)],
            on_connect=self._on_connect,
            on_message=self.on_message,
            clock=self.clock,
        )
        self.ready = asyncio.Event()  # every module has finished its first INIT attempt
        self._stop = asyncio.Event()
        self.extras: list[Any] = []  # buttons, LED: started and closed with the unit
        self.lease.changed = self._lease_changed

    # ---- services for modules -----------------------------------------------------------------
    def record(self, module: str, kind: str, body: dict[str, Any]) -> None:
        self.outbox.append(module, kind, body)  # type: ignore[arg-type]
        dropped = self.outbox.take_dropped()
        if dropped:
            total = self.outbox.max_messages
            self.outbox.append(module, "event", {
                "ts": iso_ts(self.clock.now()), "level": "alarm", "code": "outbox_full",
                "message": f"outbox reached its limit of {total} messages while the broker was "
                           f"unreachable; dropped the {dropped} oldest messages",
            })
            log.error("outbox full: dropped %d oldest messages", dropped)
        self.forwarder.notify()

    def publish_module_state(self, module: Module) -> None:
        self.link.publish(self.topics.module_state(self.id, module.id), dumps(module.state_payload()), True)
        self._update_led()

    def latest(self, module: str) -> Reading | None:
        target = self.modules.get(module)
        return target.latest_reading if target else None

    def send_reply(self, topic: str, payload: dict[str, Any]) -> None:
        self.link.publish(topic, dumps(payload))

    def quiet_replier(self) -> Replier:
        return Replier(lambda topic, payload: None, ReplyLog(1), self.clock, "", None)

    # ---- incoming ------------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        parts = self.topics.split(topic)
        if parts is None or parts[0] != self.id:
            return
        _, target, leaf = parts
        if target == UNIT_CMD:
            reply_topic = self.topics.unit_reply(self.id)
        elif leaf == "cmd" and MODULE_ID.match(target):
            reply_topic = self.topics.reply(self.id, target)
        else:
            return
        try:
            command = parse_command(payload)
        except CommandPayloadInvalid as exc:
            earlier = self.replies.get(exc.command_id) if exc.command_id else None
            if earlier is not None:
                self.send_reply(reply_topic, earlier)
                return
            reply = Replier(self.send_reply, self.replies, self.clock, reply_topic, exc.command_id)
            reply(ReplyStatus.REJECTED, exc.to_error())
            return
        earlier = self.replies.get(command.id)
        if earlier is not None:
            self.send_reply(reply_topic, earlier)  # answered again, never executed twice
            return
        reply = Replier(self.send_reply, self.replies, self.clock, reply_topic, command.id)
        try:
            if target == UNIT_CMD:
                handle_unit_command(self, command, reply)
            elif target in self.modules:
                self.modules[target].handle(command, reply)
            else:
                known = ", ".join(sorted(self.modules))
                reply(ReplyStatus.REJECTED, {"kind": "unknown_command", "param": None,
                                             "message": f"unit {self.id} has no module {target!r} "
                                                        f"(modules: {known})"})
        except CommandRejected as exc:
            reply(ReplyStatus.REJECTED, exc.to_error())

    # ---- unit state ----------------------------------------------------------------------------
    def _unit_state_payload(self, state: str) -> bytes:
        return dumps({"state": state, "boot": self.boot, "ts": iso_ts(self.clock.now())})

    def birth_payload(self) -> dict[str, Any]:
        return {
            "unit": self.id,
            "version": VERSION,
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

    async def _on_connect(self, client: aiomqtt.Client) -> list[Coroutine[Any, Any, None]]:
        # Sparkplug-like order: birth, every module state, then the unit state.
        self.link.publish(self.topics.birth(self.id), dumps(self.birth_payload()), True)
        for module in self.modules.values():
            self.publish_module_state(module)
        self.link.publish(self.topics.unit_state(self.id),
                          self._unit_state_payload("ready" if self.ready.is_set() else "init"), True)
        return [self.forwarder.run(client)]

    async def _announce_ready(self) -> None:
        while any(m.state in (LecisState.POWERED_UP, LecisState.INITIALIZING) and m.auto_init
                  for m in self.modules.values()):
            await self.clock.sleep(0.05)
        self.ready.set()
        self.link.publish(self.topics.unit_state(self.id), self._unit_state_payload("ready"), True)

    # ---- safety --------------------------------------------------------------------------------
    def estop(self, reason: str) -> None:
        """ESTOP of the whole unit: works with or without the network."""
        for module in self.modules.values():
            module.estop(reason)

    def _controller_lost(self, holder: str) -> None:
        log.warning("controller %r lost its lease", holder)
        for module in self.modules.values():
            module.controller_lost(holder)

    def _lease_changed(self) -> None:
        self._update_led()

    def _update_led(self) -> None:
        for extra in self.extras:
            update = getattr(extra, "unit_changed", None)
            if update is not None:
                update(self)

    def all_safe(self) -> None:
        for module in self.modules.values():
            module._stop_running("unit shutting down")

    # ---- life ----------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        Path(self.config.data_dir).mkdir(parents=True, exist_ok=True)
        self.outbox.open()
        tasks: list[asyncio.Task[Any]] = []
        try:
            for module in self.modules.values():
                tasks.append(asyncio.create_task(supervise(module), name=f"module-{module.id}"))
            for extra in self.extras:
                await extra.start()
            tasks.append(asyncio.create_task(self.lease.watch(), name="lease"))
            tasks.append(asyncio.create_task(self._sync_outbox(), name="outbox-sync"))
            tasks.append(asyncio.create_task(self._announce_ready(), name="ready"))
            link = asyncio.create_task(self.link.run(), name="link")
            await self._stop.wait()
            await self._shutdown(link)
        finally:
            self.all_safe()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for extra in self.extras:
                await extra.close()
            for module in self.modules.values():
                if module.driver is not None:
                    await module.driver.close()
                    module.driver = None
            self.outbox.close()

    async def _shutdown(self, link: asyncio.Task[None]) -> None:
        """Outputs to safe, the last states published and confirmed, then disconnect."""
        self.all_safe()
        for module in self.modules.values():
            module.stopping = True
            module.sm.apply("shutdown")
            self.publish_module_state(module)
        self.link.publish(self.topics.unit_state(self.id), self._unit_state_payload("disconnected"), True)
        await self.link.flush(timeout=2.0)
        self.link.stop()
        try:
            await asyncio.wait_for(link, timeout=3.0)
        except (TimeoutError, asyncio.CancelledError):
            link.cancel()

    async def _sync_outbox(self) -> None:
        while True:
            await self.clock.sleep(self.config.outbox.sync_interval_s)
            self.outbox.sync()
