"""The unit as one lifespan with an injected link: routing, dedupe and supervision without a broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.driver import DriverResources
from edge.safety.shutdown import EXIT_FAULT, EXIT_OK
from edge.safety.tasks import TaskSupervisor
from edge.unit import Unit
from lecis.config_loader import load_unit_config
from provisioning.broker import MosquittoProcess
from tests.rig import probe
from tests.system.inproc import PUMP, VALVE, write_equipment_unit

DEAD_PORT = 9  # discard: nothing listens; the unit's own link is a fake here


class FakeLink:
    """Records what the unit publishes; `run()` fails its first `failures` times (None: always)."""

    def __init__(self, failures: int | None = 0, connected: bool = True) -> None:
        self.failures = failures
        self.connected = asyncio.Event()
        if connected:  # publish() "reaches the broker": the test reads `published`
            self.connected.set()
        self.published: list[tuple[str, Any, bool]] = []
        self.runs = 0
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.failures is None or self.runs <= self.failures:
            raise RuntimeError(f"link bug #{self.runs}")
        await self._stopping.wait()

    def publish(self, topic: str, payload: bytes, retain: bool = False, hold: bool = False) -> None:
        self.published.append((topic, json.loads(payload), retain))

    async def flush(self, timeout: float = 2.0) -> None:
        return None

    def stop(self) -> None:
        self._stopping.set()

    def on(self, topic: str) -> list[Any]:
        return [payload for t, payload, _ in self.published if t == topic]


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def fake_unit(tmp: Path, link: FakeLink, port: int = DEAD_PORT
                    ) -> AsyncIterator[tuple[Unit, MockFactory]]:
    config = load_unit_config(write_equipment_unit(tmp, "fake-1", port,
                                                   {"valve1": VALVE, "pump1": PUMP}, extra=""))
    pins = MockFactory(pin_class=MockPWMPin)
    unit = Unit(config, resources=DriverResources(pin_factory=pins), link_factory=lambda unit: link)
    unit.tasks = TaskSupervisor(unit.clock, unit.fail, max_restarts=3, initial_backoff_s=0.01)
    try:
        yield unit, pins
    finally:
        pins.close()


def send(unit: Unit, target: str, body: dict[str, Any]) -> None:
    topic = "lab/fake-1/$cmd" if target == "$cmd" else f"lab/fake-1/{target}/cmd"
    unit.on_message(topic, json.dumps(body).encode())


def replies(link: FakeLink, target: str, command_id: str | None) -> list[dict[str, Any]]:
    topic = "lab/fake-1/$reply" if target == "$cmd" else f"lab/fake-1/{target}/reply"
    return [r for r in link.on(topic) if r["id"] == command_id]


async def test_routing_and_dedupe_without_a_broker(tmp_path: Path) -> None:
    link = FakeLink()
    async with fake_unit(tmp_path, link) as (unit, pins):
        async with unit:
            await until(unit.ready.is_set)
            send(unit, "$cmd", {"id": "a1", "cmd": "lease.acquire", "args": {"holder": "t", "ttl_s": 30}})
            token = replies(link, "$cmd", "a1")[-1]["result"]["token"]
            send(unit, "pump1", {"id": "on-1", "cmd": "on", "lease": token})
            await until(lambda: replies(link, "pump1", "on-1"))
            assert pins.pin(17).state == 1
            send(unit, "pump1", {"id": "off-1", "cmd": "off", "lease": token})
            await until(lambda: replies(link, "pump1", "off-1"))
            send(unit, "pump1", {"id": "on-1", "cmd": "on", "lease": token})  # the same id again
            await until(lambda: len(replies(link, "pump1", "on-1")) == 2)
            first, again = replies(link, "pump1", "on-1")
            assert again == first, "answered again with the earlier outcome"
            assert pins.pin(17).state == 0, "and not executed twice"
        assert link.on("lab/fake-1/$state")[-1]["state"] == "disconnected"


async def test_an_exception_while_handling_is_answered_and_the_unit_goes_on(tmp_path: Path) -> None:
    link = FakeLink()
    async with fake_unit(tmp_path, link) as (unit, _pins):
        async with unit:
            await until(unit.ready.is_set)

            def broken(command: object, reply: object) -> None:
                raise RuntimeError("a bug in a handler")

            unit.modules["valve1"].handle = broken  # type: ignore[method-assign]
            send(unit, "valve1", {"id": "v1", "cmd": "STATUS"})
            reply = replies(link, "valve1", "v1")[-1]
            assert reply["status"] == "rejected" and reply["error"]["kind"] == "execution"
            send(unit, "$cmd", {"id": "s1", "cmd": "STATUS"})
            assert replies(link, "$cmd", "s1")[-1]["status"] == "done"
            send(unit, "$cmd", {"id": "e1", "cmd": "ESTOP"})
            assert replies(link, "$cmd", "e1")[-1]["status"] == "done"
            assert unit.modules["pump1"].state.value == "ESTOPPED"


async def test_a_task_that_dies_is_restarted(tmp_path: Path) -> None:
    link = FakeLink(failures=2)
    async with fake_unit(tmp_path, link) as (unit, _pins):
        async with unit:
            await until(lambda: link.runs == 3)
            assert unit.tasks.restarts["link"] == 2
            send(unit, "$cmd", {"id": "s1", "cmd": "STATUS"})
            assert replies(link, "$cmd", "s1")[-1]["status"] == "done"
            unit.stop()
        assert unit.exit_code == EXIT_OK


async def test_a_task_that_keeps_dying_stops_the_unit_safe_and_non_zero(tmp_path: Path) -> None:
    link = FakeLink(failures=None)
    async with fake_unit(tmp_path, link) as (unit, pins):
        run = asyncio.create_task(unit.run())
        await until(unit.ready.is_set)
        send(unit, "$cmd", {"id": "a1", "cmd": "lease.acquire", "args": {"holder": "t", "ttl_s": 30}})
        token = replies(link, "$cmd", "a1")[-1]["result"]["token"]
        send(unit, "valve1", {"id": "on-1", "cmd": "on", "lease": token})
        await until(lambda: pins.pin(27).state == 1)
        async with asyncio.timeout(10):
            code = await run
        assert code == EXIT_FAULT
        assert unit.failure is not None and "link" in unit.failure
        assert pins.pin(27).state == 0, "outputs safe on the way out, even with on_controller_loss: hold"
        assert link.on("lab/fake-1/$state")[-1]["state"] == "lost"
        assert link.on("lab/fake-1/valve1/state")[-1]["outputs"]["on"] is False


async def test_a_lease_release_applies_the_loss_policy(tmp_path: Path) -> None:
    link = FakeLink()
    async with fake_unit(tmp_path, link) as (unit, pins):
        async with unit:
            await until(unit.ready.is_set)
            send(unit, "$cmd", {"id": "a1", "cmd": "lease.acquire", "args": {"holder": "tsc", "ttl_s": 30}})
            token = replies(link, "$cmd", "a1")[-1]["result"]["token"]
            for module in ("pump1", "valve1"):
                send(unit, module, {"id": f"{module}-on", "cmd": "on", "lease": token})
            await until(lambda: pins.pin(17).state == 1 and pins.pin(27).state == 1)
            send(unit, "$cmd", {"id": "r1", "cmd": "lease.release", "lease": token})
            assert replies(link, "$cmd", "r1")[-1]["status"] == "done"
            assert pins.pin(17).state == 0, "pump1 (off) is not left on with no holder"
            assert pins.pin(27).state == 1, "valve1 (hold) keeps its output"
            assert link.on("lab/fake-1/pump1/state")[-1]["outputs"]["on"] is False
            events = [json.loads(m.body) for m in unit.outbox.pending() if m.kind == "event"]
            lost = [e for e in events if e["code"] == "controller_lost"]
            assert len(lost) == 2 and all("'tsc'" in e["message"] and "released" in e["message"]
                                          for e in lost), lost


async def test_a_unit_whose_link_is_the_fault_still_leaves_state_lost(mosquitto: MosquittoProcess,
                                                                      tmp_path: Path) -> None:
    link = FakeLink(failures=None, connected=False)
    async with probe("127.0.0.1", mosquitto.port) as found:
        async with fake_unit(tmp_path, link, mosquitto.port) as (unit, _pins):
            # The link never connects and keeps dying: the unit's last word goes on its own connection.
            assert await unit.run() == EXIT_FAULT
        state = await found.wait_for(
            lambda: (s := found.last("lab/fake-1/$state")) and s["state"] == "lost" and s, 5, "$state lost")
    assert state["boot"] == unit.boot
