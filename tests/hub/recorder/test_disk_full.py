"""A full disk: an alarm, nothing partial written, nothing queued lost, recording resumes with space."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fault_shim import build_shim, shim_env
from hub.recorder import Recorder, RecorderEvent
from hub.recorder.chunks import FileOps, chunks_of
from tests.hub.recorder.helpers import SetClock, birth, data

ROOT = Path(__file__).resolve().parents[3]
UNIT_DIR = "runs/run-1/units/bench-1"


class FullDisk(FileOps):
    """Run files on a disk the test fills: a write gets half its bytes out, then ENOSPC."""

    def __init__(self) -> None:
        self.full = False

    def write(self, fd: int, data: bytes) -> None:
        if self.full:
            super().write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        super().write(fd, data)


def whole_lines(folder: Path) -> list[int]:
    seqs = []
    for _, _, path in chunks_of(folder, "ph1", "csv"):
        text = path.read_bytes()
        assert text.endswith(b"\n")
        seqs += [int(line.split(",")[2]) for line in text.decode().splitlines()[1:]]
    return seqs


async def test_a_full_disk_raises_one_alarm_keeps_what_came_and_resumes(tmp_path: Path) -> None:
    disk = FullDisk()
    alarms: list[tuple[str, str]] = []
    events: list[RecorderEvent] = []
    async with Recorder(tmp_path, SetClock(), on_alarm=lambda c, m: alarms.append((c, m)),
                        on_event=events.append, files=disk) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        for seq in range(1, 11):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
        await rec.flush()
        before = (tmp_path / UNIT_DIR / "ph1.2026-12-01T13.csv").read_bytes()
        disk.full = True
        for seq in range(11, 200):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
        flushed = rec.flush()
        while not alarms:
            await asyncio.sleep(0.01)
        assert alarms[0][0] == "disk_full" and "Free some space" in alarms[0][1]
        assert rec.stats()["failing"] is not None and rec.seqs("bench-1", "ph1") == list(range(1, 11))
        assert (tmp_path / UNIT_DIR / "ph1.2026-12-01T13.csv").read_bytes() == before  # no partial line
        disk.full = False  # space is back
        await flushed
        assert rec.seqs("bench-1", "ph1") == list(range(1, 200))
        stats = rec.stats()
        stored_events = [e["code"] for e in rec.events(source="recorder")]
    assert stats["failing"] is None and stats["totals"]["readings_lost"] == 0
    assert len(alarms) == 1 and [e.code for e in events] == ["disk_full", "recording_resumed"]
    assert stored_events == ["disk_full", "recording_resumed"]
    assert whole_lines(tmp_path / UNIT_DIR) == list(range(1, 200))


def lines_until(stream: Iterator[str], prefix: str) -> str:
    for line in stream:
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"the recorder process ended before printing {prefix!r}")


def fill_and_free(data_dir: Path, tmp_path: Path, with_run: bool) -> tuple[int, str]:
    """Run the child on the shimmed disk: full for 200 readings, then free; (last seq, its alarm)."""
    full = tmp_path / "disk-full"
    env = {**os.environ, **shim_env(build_shim(tmp_path), enospc=full, enospc_match=str(data_dir))}
    args = [str(data_dir)] + ([] if with_run else ["--no-run"])
    child = subprocess.Popen([sys.executable, "-m", "tests.hub.recorder.diskfull_child", *args],
                             cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        lines_until(child.stdout, "at 100")
        full.touch()
        alarm = lines_until(child.stdout, "alarm ")
        at = int(lines_until(child.stdout, "at ").split()[1])
        lines_until(child.stdout, f"at {at + 200}")  # still measuring: held in memory
        full.unlink()
        assert lines_until(child.stdout, "event recording_resumed")
        child.stdin.write("stop\n")
        child.stdin.flush()
        last = int(lines_until(child.stdout, "done ").split()[1])
        assert child.wait(30) == 0
    finally:
        full.unlink(missing_ok=True)
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
    return last, alarm


@pytest.mark.parametrize(("with_run", "first_error"), [
    (True, "No space left on device"),  # the run's CSV write meets the full disk first
    (False, "database or disk is full"),  # no run open: SQLite's own write does
])
async def test_enospc_from_the_disk_then_space_again(tmp_path: Path, with_run: bool,
                                                     first_error: str) -> None:
    data_dir = tmp_path / "hubdata"
    last, alarm = fill_and_free(data_dir, tmp_path, with_run)
    assert alarm.startswith("alarm disk_full") and first_error in alarm, alarm
    db = sqlite3.connect(data_dir / "recorder.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    async with Recorder(data_dir, SetClock()) as rec:
        assert rec.seqs("bench-1", "ph1") == list(range(1, last + 1))
        assert [e["code"] for e in rec.events(source="recorder")] == ["disk_full", "recording_resumed"]
    if with_run:
        assert whole_lines(data_dir / UNIT_DIR) == list(range(1, last + 1))
