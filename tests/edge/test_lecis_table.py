"""Every (state, standard command) pair of the LECIS table in docs/contract.md, and its outcome.

The expectations are written out here from the contract's table, not read
from lecis.states, so a wrong table in the code fails these tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from edge.driver import DriverResources
from edge.module_supervisor import supervise
from edge.slm import Module
from lecis.errors import CommandRejected
from tests.edge.module_fakes import ControllableDriver, FakeUnit, Gate, command, work_dcd

STATES = ["POWERED_UP", "INITIALIZING", "IDLE", "BUSY", "PAUSED", "ESTOPPED", "CLEARING", "ERROR", "SHUTDOWN"]
COMMANDS = ["INIT", "PAUSE", "RESUME", "ABORT", "ESTOP", "CLEAR", "RESET", "STATUS", "LOCAL", "REMOTE"]
ALL_BUT_SHUTDOWN = [s for s in STATES if s != "SHUTDOWN"]

# (state, command) -> state the module settles in; missing pairs are rejected with kind "state".
ALLOWED: dict[tuple[str, str], str] = {
    ("POWERED_UP", "INIT"): "IDLE",
    ("BUSY", "PAUSE"): "PAUSED",
    ("PAUSED", "RESUME"): "BUSY",
    ("BUSY", "ABORT"): "IDLE",
    ("PAUSED", "ABORT"): "IDLE",
    ("ESTOPPED", "CLEAR"): "IDLE",
    ("ERROR", "CLEAR"): "IDLE",  # the fault is gone in this setup; see test_clear_with_fault_remaining
}
for _s in ALL_BUT_SHUTDOWN:
    ALLOWED[(_s, "ESTOP")] = "ESTOPPED"
    # RESET: POWERED_UP then INIT again. A latched ESTOP survives it: only CLEAR leaves ESTOPPED.
    ALLOWED[(_s, "RESET")] = "ESTOPPED" if _s == "ESTOPPED" else "IDLE"
    ALLOWED[(_s, "LOCAL")] = _s
    ALLOWED[(_s, "REMOTE")] = _s
for _s in STATES:
    ALLOWED[(_s, "STATUS")] = _s


@dataclass
class Rig:
    module: Module
    unit: FakeUnit
    gate: Gate
    token: str

    def send(self, cmd: str, args: dict[str, object] | None = None) -> str:
        cid = f"{cmd}-{len(self.unit.replies)}-{id(args)}"
        self.module.handle(command(cmd, self.token, args, cid), self.unit.replier(cid))
        return cid

    def final(self, cid: str) -> dict[str, object] | None:
        for reply in reversed(self.unit.replies):
            if reply["id"] == cid and reply["status"] in ("done", "failed", "rejected"):
                return reply
        return None


async def until(predicate: Callable[[], object], timeout: float = 3.0) -> None:
    """Poll a condition the module reaches by itself (its tasks run in this loop)."""
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.005)


async def settle(module: Module, state: str, timeout: float = 3.0) -> None:
    await until(lambda: module.state.value == state, timeout)


@contextlib.asynccontextmanager
async def module_in(state: str) -> AsyncIterator[Rig]:
    unit = FakeUnit()
    gate = Gate()
    token = unit.lease.acquire({"holder": "tsc", "ttl_s": 60})["token"]
    module = Module(work_dcd(), ControllableDriver, unit, DriverResources(extra={"gate": gate}),
                    auto_init=state != "POWERED_UP")
    rig = Rig(module, unit, gate, token)
    if state == "INITIALIZING":
        gate.blocked.clear()
    if state in ("ERROR", "CLEARING"):
        gate.fail = "probe unplugged"
    task = asyncio.create_task(supervise(module, initial_backoff_s=60, max_backoff_s=60))
    try:
        if state == "POWERED_UP":
            await asyncio.sleep(0.02)
        elif state == "INITIALIZING":
            await gate.initializing.wait()
        elif state in ("ERROR", "CLEARING"):
            await settle(module, "ERROR")
            if state == "CLEARING":
                gate.fail = None
                gate.blocked.clear()
                gate.initializing.clear()
                rig.send("CLEAR")
                await gate.initializing.wait()
        else:
            await settle(module, "IDLE")
            if state in ("BUSY", "PAUSED"):
                rig.send("work", {"seconds": 60})
                await settle(module, "BUSY")
            if state == "PAUSED":
                rig.send("PAUSE")
            if state == "ESTOPPED":
                rig.send("ESTOP")
            if state == "SHUTDOWN":
                module.stopping = True
                module.sm.apply("shutdown")
        assert module.state.value == state
        yield rig
    finally:
        module.stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("cmd", COMMANDS)
@pytest.mark.parametrize("state", STATES)
async def test_standard_command_outcome(state: str, cmd: str) -> None:
    async with module_in(state) as rig:
        expected = ALLOWED.get((state, cmd))
        control_before = rig.module.sm.control.value
        if expected is None:
            with pytest.raises(CommandRejected) as caught:
                rig.send(cmd)
            assert caught.value.kind.value == "state"
            assert state in caught.value.message
            assert rig.module.state.value == state
            return
        if state == "ERROR":
            rig.gate.fail = None  # the device is back: CLEAR or RESET brings the module up
        if state == "CLEARING" or (state == "INITIALIZING" and cmd in ("RESET",)):
            rig.gate.blocked.set()  # let the pending initialization finish
        cid = rig.send(cmd)
        if state == "INITIALIZING" and cmd not in ("ESTOP", "RESET"):
            rig.gate.blocked.set()
        if cmd == "RESET":
            rig.gate.blocked.set()
        await settle(rig.module, expected)
        await until(lambda: rig.final(cid) is not None)
        reply = rig.final(cid)
        assert reply is not None and reply["status"] == "done", reply
        if cmd == "STATUS":
            assert reply["result"]["lecis"] == state
        if cmd in ("LOCAL", "REMOTE"):
            assert rig.module.sm.control.value == cmd
        else:
            assert rig.module.sm.control.value == control_before
        if cmd in ("ABORT", "ESTOP", "RESET") and state in ("BUSY", "PAUSED"):
            assert rig.module.outputs() in ({"on": False}, {})
            work_id = next(str(r["id"]) for r in rig.unit.replies if str(r["id"]).startswith("work"))
            await until(lambda: rig.final(work_id) is not None)
            assert rig.final(work_id)["status"] == "failed"  # type: ignore[index]


async def test_clear_with_fault_remaining_goes_back_to_error() -> None:
    async with module_in("ERROR") as rig:
        cid = rig.send("CLEAR")
        await until(lambda: rig.final(cid) is not None)
        assert rig.final(cid)["status"] == "failed"  # type: ignore[index]
        assert rig.module.state.value == "ERROR"
        assert rig.module.sm.error is not None and rig.module.sm.error.code == "device_lost"


async def test_estop_clear_restarts_nothing() -> None:
    async with module_in("BUSY") as rig:
        rig.send("ESTOP")
        assert rig.module.outputs() == {"on": False}
        rig.send("CLEAR")
        await settle(rig.module, "IDLE")
        await asyncio.sleep(0.05)
        assert rig.module.outputs() == {"on": False}
        assert rig.module.state.value == "IDLE"


async def test_local_control_refuses_device_commands_but_not_estop() -> None:
    async with module_in("IDLE") as rig:
        rig.send("LOCAL")
        with pytest.raises(CommandRejected) as caught:
            rig.send("work", {"seconds": 1})
        assert caught.value.kind.value == "state"
        rig.send("ESTOP")
        assert rig.module.state.value == "ESTOPPED"


async def test_driver_crash_goes_to_error_then_back_to_idle() -> None:
    unit = FakeUnit()
    gate = Gate()
    module = Module(work_dcd(), ControllableDriver, unit, DriverResources(extra={"gate": gate}))
    task = asyncio.create_task(supervise(module, initial_backoff_s=0.05, max_backoff_s=0.1))
    try:
        await settle(module, "IDLE")
        gate.crash_run.set()
        await settle(module, "ERROR")
        assert module.sm.error is not None and module.sm.error.code == "device_lost"
        gate.crash_run.clear()
        await settle(module, "IDLE")
        assert module.sm.error is None
        states = [s["lecis"] for s in unit.states]
        assert "CLEARING" in states[states.index("ERROR"):]
    finally:
        module.stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
