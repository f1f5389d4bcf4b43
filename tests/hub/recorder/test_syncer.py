"""The run files' fsync runs beside the writer: a slow disk does not hold a command's write-ahead record."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from hub.controller.effects import CommandEffect
from hub.recorder import Recorder
from hub.recorder.chunks import FileOps
from tests.hub.recorder.helpers import T0, SetClock, birth, data


class StuckSync(FileOps):
    """fsync that hangs until the test lets it go (a disk busy with someone else's writes)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stuck = threading.Event()
        self.synced: list[int] = []

    def fsync(self, fd: int) -> None:
        self.stuck.set()
        self.release.wait(30)
        self.synced.append(fd)
        super().fsync(fd)


class FailingSync(FileOps):
    def fsync(self, fd: int) -> None:
        raise OSError(5, "Input/output error")


async def wait_for(flag: threading.Event, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not flag.is_set():
            await asyncio.sleep(0.01)


def command_ids(run_dir: Path) -> list[str]:
    lines: list[str] = []
    for path in sorted(run_dir.glob("commands.*.jsonl")):
        lines += path.read_text().splitlines()
    return [json.loads(line)["effect_id"] for line in lines]


async def test_a_command_record_is_written_while_the_files_fsync_hangs(tmp_path: Path) -> None:
    disk = StuckSync()
    async with Recorder(tmp_path, SetClock(), files=disk) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        rec.ingest("bench-1", "ph1", "data", data(1, {"ph": 7.0}), 0.0)
        await rec.flush()
        await wait_for(disk.stuck)  # the periodic sync of the files is under way, and hangs
        rec.ingest("bench-1", "ph1", "data", data(2, {"ph": 7.1}), 0.0)
        started = time.monotonic()
        rec.sink("run-1").effect(CommandEffect("e1", "bench-1", "aeration", "on", {}, "task:t"),
                                 T0.timestamp(), None)
        waited = time.monotonic() - started
        assert command_ids(tmp_path / "runs" / "run-1") == ["e1"]  # written before effect() returned
        async with asyncio.timeout(5):
            await rec.flush()
        assert rec.seqs("bench-1", "ph1") == [1, 2]
        assert waited < rec.write_ahead_s  # not given up on after the write-ahead's bound
        disk.release.set()
    assert disk.synced  # the files were made durable once the disk let go


async def test_fsync_failing_is_logged_and_recording_goes_on(tmp_path: Path, caplog: object) -> None:
    async with Recorder(tmp_path, SetClock(), files=FailingSync()) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        for seq in range(1, 4):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
            await rec.flush()
            await asyncio.sleep(0.6)  # across a sync round (every second)
        writer = rec._writer
        assert writer is not None
        async with asyncio.timeout(10):
            while writer.syncer.failed == 0:
                await asyncio.sleep(0.05)
        rec.ingest("bench-1", "ph1", "data", data(4, {"ph": 7.0}), 0.0)
        await rec.flush()
        assert rec.seqs("bench-1", "ph1") == [1, 2, 3, 4]
    assert "cannot fsync a run file" in str(getattr(caplog, "text", ""))


class CountingFlushes(FileOps):
    """Counts the writer's transactions that wrote commands.jsonl (one per wait for the writer)."""

    def __init__(self) -> None:
        self.command_writes = 0
        self.paths: dict[int, str] = {}

    def open_append(self, path: Path) -> int:
        fd = super().open_append(path)
        self.paths[fd] = path.name
        return fd

    def write(self, fd: int, data: bytes) -> None:
        if self.paths.get(fd, "").startswith("commands."):
            self.command_writes += 1
        super().write(fd, data)


class HeldCommandWrites(CountingFlushes):
    """commands.jsonl's writes wait until the test lets them go (a writer busy with a burst's readings)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, fd: int, data: bytes) -> None:
        if self.paths.get(fd, "").startswith("commands."):
            self.release.wait(30)
        super().write(fd, data)


async def test_the_commands_of_a_burst_are_queued_together_and_the_send_does_not_wait(tmp_path: Path) -> None:
    disk = HeldCommandWrites()
    async with Recorder(tmp_path, SetClock(), files=disk) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        await rec.flush()
        burst = [(CommandEffect(f"e{i}", "bench-1", "aeration", "on" if i % 2 else "off", {}, "task:t"),
                  T0.timestamp()) for i in range(10)]
        started = time.monotonic()
        rec.sink("run-1").commands_sending(burst)
        # The writer is held: the call came back without it (the controller's saved state is the
        # write-ahead), where waiting would have cost up to write_ahead_s.
        assert time.monotonic() - started < rec.write_ahead_s / 2
        disk.release.set()
        async with asyncio.timeout(5):  # queued as urgent: written without a flush or a batch to gather
            while len(command_ids(tmp_path / "runs" / "run-1")) < 10:
                await asyncio.sleep(0.01)
        assert command_ids(tmp_path / "runs" / "run-1") == [f"e{i}" for i in range(10)]
        assert disk.command_writes == 1
