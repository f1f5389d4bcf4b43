"""A recorder process for the crash tests: `python -m tests.hub.recorder.writer_child DATA_DIR [TEAR_AT]`.

Ingests readings of bench-1/ph1 as fast as it can into an open run, and prints
`acked N` each time a flush confirms every seq up to N is committed (what a hub
would acknowledge to the broker), until it is killed. With TEAR_AT, the first
CSV write after seq TEAR_AT was acknowledged stops halfway through a line,
prints `torn`, and hangs there: the test kills it in the middle of a batch.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from hub.recorder import Recorder
from hub.recorder.chunks import FileOps
from lecis.clock import SystemClock
from tests.hub.recorder.helpers import birth, data


class TearingOps(FileOps):
    def __init__(self, tear_at: int | None) -> None:
        self.tear_at = tear_at
        self.acked = 0

    def write(self, fd: int, data: bytes) -> None:
        if self.tear_at is not None and self.acked >= self.tear_at and data.count(b"\n") > 10:
            super().write(fd, data[: len(data) // 2 + 7])  # some lines, then part of one
            print("torn", flush=True)
            time.sleep(3600)
        super().write(fd, data)


async def main(data_dir: Path, tear_at: int | None) -> None:
    ops = TearingOps(tear_at)
    async with Recorder(data_dir, SystemClock(), files=ops) as rec:
        rec.open_run("run-1", {"experiment": "crash"}, {"bench-1": birth()})
        seq = 1
        while True:
            for _ in range(500):
                rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0 + (seq % 100) / 1000}), 0.0)
                seq += 1
            await rec.flush()
            print(f"acked {seq - 1}", flush=True)
            ops.acked = seq - 1
            # Keep ingesting without waiting: the kill lands while a batch is being written.
            for _ in range(3000):
                rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
                seq += 1
            await asyncio.sleep(0.03)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None))
