"""`kill -9` of a recorder process mid-batch, then a restart: nothing acknowledged is lost, nothing torn."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hub.recorder import Recorder, RecorderEvent
from hub.recorder.chunks import chunks_of
from tests.hub.recorder.helpers import SetClock, data

ROOT = Path(__file__).resolve().parents[3]


def csv_seqs(folder: Path) -> list[int]:
    seqs = []
    for _, _, path in chunks_of(folder, "ph1", "csv"):
        text = path.read_bytes()
        assert text.endswith(b"\n"), f"{path} ends inside a line"
        for line in text.decode("utf-8").splitlines()[1:]:
            fields = line.split(",")
            assert len(fields) == 4 and fields[0].endswith("Z"), f"torn line {line!r} in {path}"
            seqs.append(int(fields[2]))
    return seqs


def run_child_until(data_dir: Path, stop: str, *extra: str) -> int:
    """Start a recorder process, kill -9 it once `stop` is printed; the last seq it acknowledged."""
    child = subprocess.Popen([sys.executable, "-m", "tests.hub.recorder.writer_child", str(data_dir), *extra],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    acked = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("acked "):
                acked = int(line.split()[1])
                if stop == "acked" and acked >= 15_000:
                    time.sleep(random.uniform(0.0, 0.1))  # somewhere inside the next batches
                    break
            elif line.strip() == stop:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert acked >= 4000, "the child recorder never acknowledged its rows"
    return acked


async def check_after_crash(data_dir: Path, acked: int) -> list[RecorderEvent]:
    db = sqlite3.connect(data_dir / "recorder.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    folder = data_dir / "runs/run-1/units/bench-1"
    seen: list[RecorderEvent] = []
    async with Recorder(data_dir, SetClock(), on_event=seen.append) as rec:
        stored = rec.seqs("bench-1", "ph1")
        assert stored == list(range(1, len(stored) + 1)), "a hole in what the database committed"
        assert len(stored) >= acked
        in_files = csv_seqs(folder)
        assert in_files == list(range(1, len(in_files) + 1)) and len(in_files) >= len(stored)
        # The broker delivers again what was never acknowledged, and the unit goes on.
        end = max(len(in_files), len(stored)) + 100
        for seq in range(acked + 1, end):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
        await rec.flush()
        assert rec.seqs("bench-1", "ph1") == list(range(1, end))
        assert rec.stats()["totals"]["readings_lost"] == 0
    assert csv_seqs(folder) == list(range(1, end))
    return seen


async def test_kill_9_while_batches_are_written_loses_no_acknowledged_row(tmp_path: Path) -> None:
    acked = run_child_until(tmp_path, "acked")
    await check_after_crash(tmp_path, acked)


async def test_kill_9_halfway_through_a_csv_write_repairs_the_line_and_keeps_the_rest(tmp_path: Path) -> None:
    acked = run_child_until(tmp_path, "torn", "4000")
    chunk = next(p for _, _, p in chunks_of(tmp_path / "runs/run-1/units/bench-1", "ph1", "csv"))
    assert not chunk.read_bytes().endswith(b"\n")  # the kill left half a line
    seen = await check_after_crash(tmp_path, acked)
    assert [e.code for e in seen] == ["torn_line_repaired"]
