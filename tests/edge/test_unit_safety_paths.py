"""The safety paths act first and record after; a failure in one module or in recording stops none."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from edge.driver import DriverResources
from edge.module_supervisor import supervise
from edge.outbox import OutboxError
from edge.replies import Replier
from edge.safety.estop import estop_all
from edge.safety.lease_loss import apply_loss_policy
from edge.slm import Module
from tests.edge.module_fakes import ControllableDriver, FakeUnit, Gate, command, work_dcd


class DiskFullUnit(FakeUnit):
    """Unit services whose every recording fails, as on a full disk."""

    def record(self, module: str, kind: str, body: dict[str, Any]) -> None:
        raise OutboxError("outbox data/outbox.sqlite3 could not store a message: database or disk is full")


class Exploding:
    id = "broken"

    def estop(self, reason: str) -> None:
        raise RuntimeError("driver bug")

    def controller_lost(self, holder: str, how: str) -> None:
        raise RuntimeError("driver bug")


async def until(predicate: Any, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(unit: FakeUnit, gate: Gate | None = None) -> Any:
    module = Module(work_dcd(), ControllableDriver, unit, DriverResources(extra={"gate": gate or Gate()}))
    task = asyncio.create_task(supervise(module, initial_backoff_s=0.01, max_backoff_s=0.02))
    try:
        await until(lambda: module.state.value == "IDLE")
        yield module
    finally:
        module.stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_loss_policy_and_estop_reach_every_module_on_a_full_disk() -> None:
    unit = DiskFullUnit()
    token = unit.lease.acquire({"holder": "tsc", "ttl_s": 60})["token"]
    async with running(unit) as first, running(unit) as second:
        for module in (first, second):
            module.handle(command("work", token, {"seconds": 60}), unit.replier(f"w-{id(module)}"))
        await until(lambda: first.outputs()["on"] and second.outputs()["on"])
        apply_loss_policy([Exploding(), first, second], "tsc", "expired")  # type: ignore[list-item]
        assert first.outputs() == {"on": False} and second.outputs() == {"on": False}
        assert {first.state.value, second.state.value} == {"IDLE"}
        assert unit.states[-1]["outputs"] == {"on": False}, "the state is published despite the disk"
        assert estop_all([Exploding(), first, second], "test") == ["broken"]  # type: ignore[list-item]
        assert {first.state.value, second.state.value} == {"ESTOPPED"}


async def test_a_driver_that_cannot_even_be_built_puts_its_module_in_error_and_recovers() -> None:
    unit = DiskFullUnit()
    builds = 0

    def factory(dcd: Any, host: Any, resources: DriverResources) -> ControllableDriver:
        nonlocal builds
        builds += 1
        if builds <= 2:
            raise RuntimeError("bad settings")
        return ControllableDriver(dcd, host, resources)

    module = Module(work_dcd(), factory, unit, DriverResources(extra={"gate": Gate()}))
    task = asyncio.create_task(supervise(module, initial_backoff_s=0.01, max_backoff_s=0.02))
    try:
        await until(lambda: any(s["lecis"] == "ERROR" for s in unit.states))
        await until(lambda: module.state.value == "IDLE")
        assert not task.done(), "the supervisor survived the failures (and the failing records)"
        assert builds == 3
    finally:
        module.stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_command_task_that_fails_past_its_handlers_leaves_the_module_safe_in_error() -> None:
    unit = FakeUnit()
    token = unit.lease.acquire({"holder": "tsc", "ttl_s": 60})["token"]

    def send(topic: str, payload: dict[str, Any]) -> None:
        if payload["status"] == "running":
            raise RuntimeError("the reply path broke")
        unit.replies.append(payload)

    async with running(unit) as module:
        reply = Replier(send, unit.log, unit.clock, "r", "w1")
        module.handle(command("work", token, {"seconds": 60}, "w1"), reply)
        await until(lambda: module.state.value == "ERROR")
        assert module.outputs() == {"on": False}
        assert module.sm.error is not None and module.sm.error.code == "driver_crash"
        await until(lambda: any(r["id"] == "w1" and r["status"] == "failed" for r in unit.replies))
        final = [r for r in unit.replies if r["id"] == "w1" and r["status"] == "failed"]
        assert len(final) == 1 and "command failed unexpectedly" in final[0]["error"]["message"], \
            "the controller is not left waiting for a final reply"
