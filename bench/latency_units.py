"""The control latency bench's fake units: a process of them, spawned by bench.control_latency_bench.

Each unit publishes contract-shaped `lab/U/M/data` with `seq` for every module at
`--rate` Hz, retained `$birth`, module states and `$state`, and answers
`lease.acquire`/`renew`/`release` and its output's commands with `done` at once.
Module `ph1` steps between LOW and HIGH every `--half-cycle` readings. The unit
stamps (CLOCK_MONOTONIC) the reading that crosses a threshold just before it
publishes it, and the matching command when its message arrives. The first
units' process also times the broker's round trip on a session of its own.
Results go to `--out` as JSON when SIGTERM ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lecis.clock import SystemClock, iso_ts
from lecis.dcd_loader import load_dcd
from lecis.mqtt_session import MqttSession, SessionConfig
from lecis.states import Control, LecisState
from lecis.topics import Topics
from lecis.wire import (
    Birth,
    BirthModule,
    Data,
    ModuleState,
    Reading,
    UnitState,
    UnitStateName,
    encode,
    from_bytes,
    to_bytes,
)

LOW, HIGH = 6.5, 7.5  # the controlled reading's two levels
OUTPUT = "pump1"
CONTROLLED = "ph1"
VALUES = {"ph": 7.0, "do_mg": 8.1, "do_sat": 92.0, "temp": 25.0}


def unit_name(i: int) -> str:
    return f"lat-{i:02d}"


def unit_phase(phases: str, index: int, units: int, seed: int) -> float:
    """Where unit `index`'s ticks fall in the period: the same in every units' process.

    `random`: independent units (each real unit starts sampling when it boots), seeded;
    `aligned`: every unit ticks at the same instant, the worst case for the hub;
    `spread`: evenly spaced."""
    if phases == "aligned":
        return 0.0
    if phases == "spread":
        return index / max(units, 1)
    return random.Random(f"{seed}:{index}").random()


@dataclass
class Crossing:
    cmd: str  # the command the script must send for it
    published: float
    seq: int
    arrived: float | None = None


@dataclass
class FakeUnit:
    """One unit: readings out at a fixed rate, commands answered `done` at once."""

    name: str
    birth: Birth
    topics: Topics
    port: int
    rate: float
    half_cycle: int
    phase: float = 0.0  # where in the period this unit's ticks fall (0..1), on a grid all processes share
    session: MqttSession | None = None
    seq: dict[str, int] = field(default_factory=dict)
    crossings: list[Crossing] = field(default_factory=list)
    extra_commands: list[tuple[str, float]] = field(default_factory=list)  # (what, arrived)
    leased_at: float | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    boot: str = field(default_factory=lambda: str(uuid.uuid4()))
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    output_on: bool = False
    started: float = 0.0
    stopped: float = 0.0

    def now_ts(self) -> str:
        return iso_ts(SystemClock().now())

    def on_message(self, topic: str, payload: bytes) -> None:
        arrived = time.monotonic()
        parts = self.topics.split(topic)
        if parts is None:
            return
        try:
            body = from_bytes(payload)
        except ValueError:
            return
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            return
        cmd = str(body.get("cmd"))
        result: dict[str, Any] = {}
        if parts[1] == "$cmd":
            reply_topic = self.topics.unit_reply(self.name)
            if cmd == "lease.acquire":
                given = body.get("args")
                cmd_args: dict[str, Any] = given if isinstance(given, dict) else {}
                result = {"token": self.token, "holder": cmd_args.get("holder"),
                          "expires_in_s": cmd_args.get("ttl_s", 30)}
                if self.leased_at is None:
                    self.leased_at = arrived
            elif cmd == "lease.renew":
                result = {"expires_in_s": 30}
        else:
            reply_topic = self.topics.reply(self.name, parts[1])
            if parts[1] == OUTPUT and cmd in ("on", "off"):
                self.note_command(cmd, arrived)
                self.output_on = cmd == "on"
                result = {"on": self.output_on}
            else:
                self.extra_commands.append((f"{parts[1]}:{cmd}", arrived))
        reply = {"id": body["id"], "status": "done", "error": None, "result": result, "ts": self.now_ts()}
        self.spawn(self.publish(reply_topic, to_bytes(reply)))
        if parts[1] == OUTPUT and cmd in ("on", "off"):
            self.spawn(self.publish_output_state())

    def note_command(self, cmd: str, arrived: float) -> None:
        """The oldest crossing still waiting for this command gets it; anything else is extra."""
        for crossing in self.crossings:
            if crossing.arrived is None and crossing.cmd == cmd:
                crossing.arrived = arrived
                return
        self.extra_commands.append((f"{OUTPUT}:{cmd}", arrived))

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        assert self.session is not None
        await self.session.publish(topic, payload, qos=1, retain=retain)

    async def publish_output_state(self) -> None:
        outputs = {"on": self.output_on}
        state = ModuleState(LecisState.IDLE, Control.REMOTE, self.now_ts(), outputs)
        await self.publish(self.topics.module_state(self.name, OUTPUT), encode(state), retain=True)

    async def announce(self) -> None:
        await self.publish(self.topics.birth(self.name), encode(self.birth), retain=True)
        for module in self.birth.modules:
            state = ModuleState(LecisState.IDLE, Control.REMOTE, self.now_ts(),
                                {"on": False} if module == OUTPUT else {})
            await self.publish(self.topics.module_state(self.name, module), encode(state), retain=True)
        state_msg = UnitState(UnitStateName.READY, self.boot, self.now_ts())
        await self.publish(self.topics.unit_state(self.name), encode(state_msg), retain=True)

    def value(self, module: str, reading: str, n: int) -> float:
        if module == CONTROLLED:
            return LOW if (n // self.half_cycle) % 2 == 0 else HIGH
        return VALUES[reading]

    async def run(self, stop: asyncio.Event, warmup_s: float) -> None:
        config = SessionConfig(port=self.port, client_id=f"{self.name}-{self.boot[:8]}")
        async with MqttSession(config, on_message=self.on_message) as session:
            self.session = session
            await session.subscribe(self.topics.unit_cmd(self.name))
            await session.subscribe(self.topics.module_cmd_filter(self.name))
            await self.announce()
            period = 1.0 / self.rate
            # CLOCK_MONOTONIC is one clock for every process: ticks on a shared grid, offset by the phase.
            grid = time.monotonic() + 0.5
            start = self.started = (math.floor(grid / period) + 1 + self.phase) * period
            n = 0
            previous = None
            while not stop.is_set():
                due = start + n * period
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                ts = self.now_ts()
                for module, spec in self.birth.modules.items():
                    if not spec.readings:
                        continue
                    values = {r.name: self.value(module, r.name, n) for r in spec.readings}
                    seq = self.seq[module] = self.seq.get(module, 0) + 1
                    payload = encode(Data(seq, (Reading(ts, values),)))
                    topic = self.topics.data(self.name, module)
                    if module == CONTROLLED:
                        level = values["ph"]
                        published = time.monotonic()
                        if previous is not None and level != previous and self.measuring(published, warmup_s):
                            self.crossings.append(Crossing("on" if level == LOW else "off", published, seq))
                        previous = level
                    self.spawn(self.publish(topic, payload))
                n += 1
            self.stopped = time.monotonic()
            await asyncio.gather(*self.pending, return_exceptions=True)

    def measuring(self, now: float, warmup_s: float) -> bool:
        return self.leased_at is not None and now - self.leased_at >= warmup_s


async def ping_loop(port: int, stop: asyncio.Event, rate: float) -> list[float]:
    """The broker's round trip from inside the units' process, under the run's load."""
    topic = f"bench/ping/{uuid.uuid4().hex}"
    times: list[float] = []
    got = asyncio.Event()
    async with MqttSession(SessionConfig(port=port), subscriptions=[topic],
                           on_message=lambda t, p: got.set()) as session:
        while not stop.is_set():
            got.clear()
            start = time.monotonic()
            await session.publish(topic, b"ping", qos=1)
            await got.wait()
            times.append(time.monotonic() - start)
            await asyncio.sleep(1.0 / rate)
    return times


async def units_main(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    topics = Topics()
    units = []
    for i in range(args.first, args.first + args.units):
        name = unit_name(i)
        dcds = sorted((folder / name / "dcd").glob("*.yaml"))
        modules = {p.stem: BirthModule.from_dcd(load_dcd(p)) for p in dcds}
        birth = Birth(name, "bench", str(uuid.uuid4()), iso_ts(SystemClock().now()), modules,
                      {"lease": {"max_ttl_s": 300}})
        units.append(FakeUnit(name, birth, topics, args.port, args.rate, args.half_cycle,
                              unit_phase(args.phases, i, args.total_units, args.seed)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    pings = asyncio.create_task(ping_loop(args.port, stop, 20.0)) if args.first == 0 else None
    await asyncio.gather(*(u.run(stop, args.warmup) for u in units))
    rtt = await pings if pings is not None else []
    out = {
        "rtt": rtt,
        "units": {u.name: {"crossings": [[c.cmd, c.published, c.arrived] for c in u.crossings],
                           "extra": u.extra_commands, "leased": u.leased_at is not None,
                           "readings": sum(u.seq.values()), "seconds": u.stopped - u.started}
                  for u in units},
    }
    Path(args.out).write_text(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--folder", required=True, help="where the units' DCD folders are (LAT-NN/dcd)")
    parser.add_argument("--out", required=True, help="results file (JSON)")
    parser.add_argument("--first", type=int, default=0, help="index of this process's first unit")
    parser.add_argument("--units", type=int, default=5, help="units in this process")
    parser.add_argument("--total-units", type=int, default=0, help="units in all processes (for spread)")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--half-cycle", type=int, default=5)
    parser.add_argument("--phases", choices=["random", "aligned", "spread"], default="random")
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(units_main(parser.parse_args()))


if __name__ == "__main__":
    main()
