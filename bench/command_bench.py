"""ESTOP latency (controller publish to pin change) and command round trip, beside the broker's own.

Run: `.venv/bin/python -m bench.command_bench [--tries 1000] [--fsync-delay-ms 50] [--load-rate 500]`.
Everything in one run, against one private Mosquitto on loopback:

1. the broker's own round trip (publish, receive the echo);
2. a unit process (bench/unit_process.py: mock pins that log each change with
   CLOCK_MONOTONIC) on a disk whose every fsync sleeps 50 ms (bench/fault_shim.c
   through LD_PRELOAD): ESTOP and command round trips, idle;
3. a second unit process on the same slow disk with `--load-rate` readings a second
   going through its outbox (appended, committed, checkpointed, forwarded): ESTOP again.

Each ESTOP is sent a random 0..40 ms after the pump is on, so that ESTOPs fall at
moments unrelated to the unit's own work (a checkpoint every second).

The controller is this process; a pin change is timestamped in the unit process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.broker_rtt import broker_round_trips
from bench.fault_shim import build_shim, shim_env
from bench.stats import percentile, summary_ms, table
from hub.unit_client import UnitClient, connected_client
from provisioning.broker import MosquittoProcess

PUMP = "module: pump1\ndriver: gpio.pump\npin: 17\nmax_on_s: 3600\n"
UNIT = "bench-cmd"
ESTOP_TARGET_MS = 10.0


class PinLog:
    """Reads the unit process's pin log (a pipe): CLOCK_MONOTONIC instant and value of each change."""

    def __init__(self, fd: int) -> None:
        self.changes: list[tuple[float, float]] = []
        self.cond = threading.Condition()
        self._file = os.fdopen(fd, "rb", buffering=0)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        tail = b""
        while chunk := self._file.read(4096):
            data = tail + chunk
            *lines, tail = data.split(b"\n")
            with self.cond:
                for line in lines:
                    at, _pin, value = line.split()
                    self.changes.append((float(at), float(value)))
                self.cond.notify_all()

    def wait_value(self, value: float, after: int, timeout: float = 5.0) -> float:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(v == value for _, v in self.changes[after:]), timeout)
            if not ok:
                raise TimeoutError(f"pin never reached {value}")
            return next(t for t, v in self.changes[after:] if v == value)


@contextmanager
def unit_process(tmp: Path, port: int, env: dict[str, str], load_rate: float) -> Iterator[PinLog]:
    """A unit on its own data dir, in its own process; yields its pin log."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "pump1.yaml").write_text(PUMP)
    (tmp / "unit.yaml").write_text(f"unit: {UNIT}\nbroker: {{host: 127.0.0.1, port: {port}}}\n"
                                   f"data_dir: {tmp / 'data'}\nmodules: [pump1.yaml]\n")
    read_fd, write_fd = os.pipe()
    log = (tmp / "unit.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.unit_process", "--config", str(tmp / "unit.yaml"),
         "--pin-log", str(write_fd), "--load-rate", str(load_rate)],
        pass_fds=(write_fd,), stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    os.close(write_fd)
    try:
        yield PinLog(read_fd)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def wait_ready(ctl: UnitClient, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = await ctl.call(None, "STATUS", lease=None, timeout=1.0)
            if reply["status"] == "done":
                return
        except TimeoutError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the unit process did not answer STATUS within 20 s; see its unit.log")


async def measure(port: int, pins: PinLog, tries: int, round_trips: bool,
                  jitter_s: float) -> dict[str, list[float]]:
    estop: list[float] = []
    round_trip: list[float] = []
    async with connected_client("127.0.0.1", port, UNIT, holder="bench") as ctl:
        await wait_ready(ctl)
        await ctl.acquire(ttl_s=300)
        if round_trips:
            for i in range(tries):
                start = time.monotonic()
                reply = await ctl.call("pump1", "on" if i % 2 == 0 else "off")
                round_trip.append(time.monotonic() - start)
                assert reply["status"] == "done", reply
            await ctl.call("pump1", "off")
        for _ in range(tries):
            assert (await ctl.call("pump1", "on"))["status"] == "done"
            # Sent at a moment of its own, not right after a reply: an ESTOP that only follows a
            # prompt answer would never land inside a stall of the unit's loop.
            await asyncio.sleep(random.uniform(0, jitter_s))
            mark = len(pins.changes)
            sent = time.monotonic()
            await ctl.send(None, "ESTOP", lease=None)
            off_at = await asyncio.to_thread(pins.wait_value, 0.0, mark)
            estop.append(off_at - sent)
            assert (await ctl.call(None, "CLEAR"))["status"] == "done"
    return {"estop": estop, "round_trip": round_trip}


def fsyncs(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tries", type=int, default=1000)
    parser.add_argument("--fsync-delay-ms", type=int, default=50)
    parser.add_argument("--load-rate", type=float, default=500.0,
                        help="readings a second through the outbox during the loaded run")
    parser.add_argument("--jitter-ms", type=float, default=40.0,
                        help="each ESTOP waits a random 0..N ms after the pump is on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name, MosquittoProcess() as broker:
        tmp = Path(name)
        shim = build_shim(tmp)
        rtt = asyncio.run(broker_round_trips(broker.port, args.tries))
        counts = {}
        figures = {}
        for run, rate in (("idle", 0.0), ("load", args.load_rate)):
            count = tmp / f"fsyncs-{run}"
            env = shim_env(shim, fsync_delay_ms=args.fsync_delay_ms, count=count)
            with unit_process(tmp / run, broker.port, env, rate) as pins:
                figures[run] = asyncio.run(measure(broker.port, pins, args.tries, run == "idle",
                                                   args.jitter_ms / 1000))
            counts[run] = fsyncs(count)
    base = percentile(rtt, 0.99)
    delay = f"{args.fsync_delay_ms} ms fsync"
    table(f"ESTOP and commands over loopback Mosquitto; unit in its own process, every fsync +{delay}", [
        ("broker round trip (publish -> own echo)", summary_ms(rtt)),
        ("ESTOP publish -> pin off, idle", summary_ms(figures["idle"]["estop"])),
        (f"ESTOP publish -> pin off, {args.load_rate:.0f} readings/s", summary_ms(figures["load"]["estop"])),
        ("command round trip (on/off -> done), idle", summary_ms(figures["idle"]["round_trip"])),
        ("ESTOP p99 / broker p99, idle / load",
         f"{percentile(figures['idle']['estop'], 0.99) / base:5.2f}x / "
         f"{percentile(figures['load']['estop'], 0.99) / base:5.2f}x  "
         f"(target: ESTOP p99 < {ESTOP_TARGET_MS:g} ms)"),
        ("fsyncs delayed in the unit, idle / load", f"{counts['idle']} / {counts['load']}"),
    ])


if __name__ == "__main__":
    main()
