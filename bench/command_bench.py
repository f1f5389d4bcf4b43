"""ESTOP latency (controller publish to pin change) and command round trip, beside the broker's own.

Run: `.venv/bin/python -m bench.command_bench [--tries 1000]`. The unit runs
in its own thread and event loop on mock pins; the controller is an MQTT
client in the main thread; both talk through a private Mosquitto on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
from gpiozero.pins.mock import MockFactory, MockPWMPin

from bench.stats import percentile, summary_ms, table
from edge.driver import DriverResources
from edge.unit import Unit
from hub.unit_client import connected_client
from lecis.config_loader import load_unit_config
from lecis.mqtt_options import NO_DELAY_SOCKET_OPTIONS
from provisioning.broker import MosquittoProcess

PUMP = "module: pump1\ndriver: gpio.pump\npin: 17\nmax_on_s: 3600\n"


class PinWatch:
    """Timestamps (time.monotonic) of every change of one mock pin, waitable from another thread."""

    def __init__(self, pin: Any) -> None:
        self.changes: list[tuple[float, float]] = []
        self.cond = threading.Condition()
        original = pin._change_state

        def change(value: Any) -> bool:
            changed: bool = original(value)
            if changed:
                with self.cond:
                    self.changes.append((time.monotonic(), float(value)))
                    self.cond.notify_all()
            return changed

        pin._change_state = change

    def wait_value(self, value: float, after: int, timeout: float = 5.0) -> float:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(v == value for _, v in self.changes[after:]), timeout)
            if not ok:
                raise TimeoutError(f"pin never reached {value}")
            return next(t for t, v in self.changes[after:] if v == value)


def start_unit(tmp: Path, port: int) -> tuple[Unit, MockFactory, threading.Thread, asyncio.AbstractEventLoop]:
    (tmp / "pump1.yaml").write_text(PUMP)
    (tmp / "unit.yaml").write_text(f"unit: bench-cmd\nbroker: {{host: 127.0.0.1, port: {port}}}\n"
                                   f"data_dir: {tmp / 'data'}\nmodules: [pump1.yaml]\n")
    config = load_unit_config(tmp / "unit.yaml")
    pins = MockFactory(pin_class=MockPWMPin)
    loop = asyncio.new_event_loop()
    holder: dict[str, Unit] = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            unit = Unit(config, resources=DriverResources(pin_factory=pins))
            holder["unit"] = unit
            task = asyncio.create_task(unit.run())
            await unit.ready.wait()
            await unit.link.connected.wait()
            ready.set()
            await task

        loop.run_until_complete(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("unit did not start")
    return holder["unit"], pins, thread, loop


async def broker_round_trips(port: int, tries: int) -> list[float]:
    topic = f"bench/ping/{uuid.uuid4().hex}"
    times: list[float] = []
    async with aiomqtt.Client("127.0.0.1", port, socket_options=NO_DELAY_SOCKET_OPTIONS) as client:
        await client.subscribe(topic, qos=1)
        messages = client.messages
        for i in range(tries):
            start = time.monotonic()
            await client.publish(topic, str(i), qos=1)
            async for _ in messages:
                break
            times.append(time.monotonic() - start)
    return times


async def measure(port: int, watch: PinWatch, tries: int) -> dict[str, list[float]]:
    estop: list[float] = []
    round_trip: list[float] = []
    async with connected_client("127.0.0.1", port, "bench-cmd", holder="bench") as ctl:
        await ctl.acquire(ttl_s=300)
        for i in range(tries):
            start = time.monotonic()
            reply = await ctl.call("pump1", "on" if i % 2 == 0 else "off")
            round_trip.append(time.monotonic() - start)
            assert reply["status"] == "done", reply
        await ctl.call("pump1", "off")
        for _ in range(tries):
            assert (await ctl.call("pump1", "on"))["status"] == "done"
            mark = len(watch.changes)
            sent = time.monotonic()
            await ctl.send(None, "ESTOP", lease=None)
            off_at = await asyncio.to_thread(watch.wait_value, 0.0, mark)
            estop.append(off_at - sent)
            assert (await ctl.call(None, "CLEAR"))["status"] == "done"
    return {"estop": estop, "round_trip": round_trip}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tries", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MosquittoProcess() as broker:
        unit, pins, thread, loop = start_unit(Path(tmp), broker.port)
        watch = PinWatch(pins.pin(17))
        rtt = asyncio.run(broker_round_trips(broker.port, args.tries))
        figures = asyncio.run(measure(broker.port, watch, args.tries))
        loop.call_soon_threadsafe(unit.stop)
        thread.join(15)
    base = percentile(rtt, 0.99)
    estop_ratio = percentile(figures["estop"], 0.99) / base
    table("ESTOP and commands over loopback Mosquitto", [
        ("broker round trip (publish -> own echo)", summary_ms(rtt)),
        ("ESTOP publish -> pin off", summary_ms(figures["estop"])),
        ("command round trip (on/off -> done)", summary_ms(figures["round_trip"])),
        ("ESTOP p99 / broker p99", f"{estop_ratio:5.2f}x  (target: ESTOP p99 < 10 ms)"),
        ("command p99 / broker p99", f"{percentile(figures['round_trip'], 0.99) / base:5.2f}x"),
    ])


if __name__ == "__main__":
    main()
