"""A controllable driver and unit services, to put a Module in any LECIS state."""

from __future__ import annotations

import asyncio
from typing import Any

from edge.driver import Driver, DriverResources, Reading
from edge.lease import LeaseManager
from edge.replies import Replier, ReplyLog
from edge.slm import Module
from lecis.clock import SystemClock
from lecis.commands import Command
from lecis.dcd import CommandSpec, Dcd, ParamSpec
from lecis.errors import DeviceError


class Gate:
    """What the next driver's initialize() does: pass, fail, or block until opened."""

    def __init__(self) -> None:
        self.fail: str | None = None
        self.blocked = asyncio.Event()
        self.blocked.set()
        self.initializing = asyncio.Event()
        self.crash_run = asyncio.Event()


class ControllableDriver(Driver):
    timed_commands = frozenset({"work"})

    def __init__(self, dcd: Dcd, host: Any, resources: DriverResources) -> None:
        super().__init__(dcd, host, resources)
        self.gate: Gate = resources.extra["gate"]
        self.on = False

    async def initialize(self) -> None:
        self.gate.initializing.set()
        await self.gate.blocked.wait()
        if self.gate.fail:
            raise DeviceError("device_lost", self.gate.fail)

    async def run(self) -> None:
        await self.gate.crash_run.wait()
        raise DeviceError("device_lost", "the device went away")

    async def execute(self, name: str, args: dict[str, Any], run: Any) -> dict[str, Any]:
        self.on = True
        self.host.outputs_changed()
        try:
            ran = await run.wait(args["seconds"])
        finally:
            self.on = False
        return {"ran_s": ran}

    def pause(self) -> None:
        self.on = False

    def resume(self) -> None:
        self.on = True

    def safe(self) -> None:
        self.on = False

    def outputs(self) -> dict[str, Any]:
        return {"on": self.on}


class FakeUnit:
    """Unit services without a broker: records what would be published."""

    def __init__(self) -> None:
        self.unit = "bench-t"
        self.clock = SystemClock()
        self.lease = LeaseManager(self.clock, 300, lambda holder, how: None)
        self.records: list[tuple[str, str, dict[str, Any]]] = []
        self.states: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self.log = ReplyLog()

    def record(self, module: str, kind: str, body: dict[str, Any]) -> None:
        self.records.append((module, kind, body))

    def publish_module_state(self, module: Module) -> None:
        self.states.append(module.state_payload())

    def latest(self, module: str) -> Reading | None:
        return None

    def replier(self, command_id: str) -> Replier:
        return Replier(lambda topic, payload: self.replies.append(payload), self.log, self.clock, "r",
                       command_id)


def work_dcd() -> Dcd:
    return Dcd(
        module="pump1", driver="fake", source="test", kind="equipment",
        commands=(CommandSpec("work", (ParamSpec("seconds", minimum=0.001, maximum=3600),)),),
        on_controller_loss="off",
    )


def command(cmd: str, lease: str | None, args: dict[str, Any] | None = None, cid: str = "") -> Command:
    return Command(id=cid or f"{cmd}-{id(args)}-{asyncio.get_running_loop().time()}", cmd=cmd,
                   args=args or {}, lease=lease)
