"""A unit process for benchmarks: mock pins that log each change, and optional outbox load.

Run: `python -m bench.unit_process --config unit.yaml --pin-log FD [--load-rate N]`.
Each pin change is written to file descriptor FD as `<CLOCK_MONOTONIC seconds> <pin> <value>`;
CLOCK_MONOTONIC is system-wide on Linux, so the benchmark compares it with its own clock.
`--load-rate` appends that many readings a second through the unit's own `record()`,
as a busy instrument would, so the outbox writes, syncs and forwards while commands run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.driver import DriverResources
from edge.unit import Unit
from lecis.clock import iso_ts
from lecis.config_loader import load_unit_config


class LoggedPin(MockPWMPin):  # type: ignore[misc]
    """A mock PWM pin that reports every change of its state, stamped in this process."""

    log_fd = -1

    def _change_state(self, value: Any) -> bool:
        changed: bool = super()._change_state(value)
        if changed and LoggedPin.log_fd >= 0:
            os.write(LoggedPin.log_fd, b"%.9f %s %s\n" % (time.monotonic(), str(self.info.name).encode(),
                                                          repr(float(value)).encode()))
        return changed


async def load(unit: Unit, rate: float) -> None:
    """Readings into the outbox at `rate` per second, in bursts every 10 ms."""
    period = 0.01
    per_tick = max(1, round(rate * period))
    while True:
        ts = iso_ts(unit.clock.now())
        for _ in range(per_tick):
            unit.record("load", "data", {"readings": [{"ts": ts, "values": {"x": 1.0}}]})
        await asyncio.sleep(period)


async def serve(args: argparse.Namespace) -> int:
    config = load_unit_config(args.config)
    unit = Unit(config, resources=DriverResources(pin_factory=MockFactory(pin_class=LoggedPin)))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, unit.stop)
    loader = asyncio.create_task(load(unit, args.load_rate)) if args.load_rate > 0 else None
    try:
        return await unit.run()
    finally:
        if loader is not None:
            loader.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--pin-log", type=int, required=True, help="file descriptor for pin changes")
    parser.add_argument("--load-rate", type=float, default=0.0, help="readings a second into the outbox")
    args = parser.parse_args()
    LoggedPin.log_fd = args.pin_log
    raise SystemExit(asyncio.run(serve(args)))


if __name__ == "__main__":
    main()
