"""A full backlog: one alarm per episode, saying why, a second episode alarmed again."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from hub.recorder import Recorder
from hub.recorder.chunks import FileOps
from tests.hub.recorder.helpers import SetClock, birth, data


class SlowDisk(FileOps):
    """A disk that takes writes, but only when the test lets it: the writer falls behind."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.go.set()
        self.waiting = threading.Event()

    def write(self, fd: int, data: bytes) -> None:
        if not self.go.is_set():
            self.waiting.set()
            self.go.wait(30)
        super().write(fd, data)


async def overflow(rec: Recorder, disk: SlowDisk, first_seq: int, count: int) -> None:
    disk.go.clear()
    disk.waiting.clear()
    rec.ingest("bench-1", "ph1", "data", data(first_seq, {"ph": 7.0}), 0.0)
    while not disk.waiting.is_set():  # the writer is stuck inside a write: what comes now queues
        await asyncio.sleep(0.01)
    for seq in range(first_seq + 1, first_seq + count):
        rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)


async def test_each_backlog_episode_raises_its_alarm_saying_the_disk_is_slow_not_full(tmp_path: Path) -> None:
    disk = SlowDisk()
    alarms: list[tuple[str, str]] = []
    async with Recorder(tmp_path, SetClock(), on_alarm=lambda c, m: alarms.append((c, m)), files=disk,
                        max_backlog=20) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        await rec.flush()
        await overflow(rec, disk, 1, 40)
        assert [code for code, _ in alarms] == ["recorder_backlog_full"]
        message = alarms[0][1]
        assert "messages arrive faster than the disk stores them" in message
        assert "until the writer catches up" in message and "disk takes writes again" not in message
        disk.go.set()
        await rec.flush()
        rec.ingest("bench-1", "ph1", "data", data(100, {"ph": 7.0}), 0.0)  # stored: the episode is over
        await rec.flush()
        assert 100 in rec.seqs("bench-1", "ph1")
        await overflow(rec, disk, 200, 40)
        assert [code for code, _ in alarms] == ["recorder_backlog_full"] * 2
        disk.go.set()
        stats = rec.stats()
    assert stats["dropped_backlog_full"] > 0
