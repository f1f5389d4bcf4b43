"""A recorder on a disk that fills up: `python -m tests.hub.recorder.diskfull_child DATA_DIR [--no-run]`.

Run under bench/fault_shim.c (LD_PRELOAD) so that writes under DATA_DIR fail
with ENOSPC while the test's flag file exists. Ingests a reading of bench-1/ph1
every 5 ms, prints `alarm CODE` and `event CODE` as the recorder reports them
and `at N` every 100 readings; on `stop` from stdin it stops ingesting, waits
until everything is written, prints `done N` and exits. With `--no-run` no run
is open, so only the database writes (and meets the full disk).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hub.recorder import Recorder, RecorderEvent
from lecis.clock import SystemClock
from tests.hub.recorder.helpers import birth, data


async def main(data_dir: Path, with_run: bool) -> None:
    def on_event(event: RecorderEvent) -> None:
        print(f"event {event.code}", flush=True)

    def on_alarm(code: str, message: str) -> None:
        print(f"alarm {code} {message}", flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def command() -> None:
        if sys.stdin.readline().strip() == "stop":
            stop.set()

    loop.add_reader(sys.stdin.fileno(), command)
    async with Recorder(data_dir, SystemClock(), on_alarm=on_alarm, on_event=on_event) as rec:
        if with_run:
            rec.open_run("run-1", {}, {"bench-1": birth()})
        seq = 0
        while not stop.is_set():
            seq += 1
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
            if seq % 100 == 0:
                print(f"at {seq}", flush=True)
            await asyncio.sleep(0.005)
        await rec.flush()
        print(f"done {seq}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), "--no-run" not in sys.argv[2:]))
