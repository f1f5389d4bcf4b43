"""Run files in hourly chunks: closed chunks never change, the open one only grows, torn lines repaired."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hub.recorder import Recorder, RecorderEvent
from hub.recorder.chunks import ChunkStream, FileOps, chunks_of
from tests.hub.recorder.helpers import T0, SetClock, birth, data

UNIT_DIR = "runs/run-1/units/bench-1"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def seqs_in(folder: Path, module: str = "ph1") -> list[int]:
    out = []
    for _, _, path in chunks_of(folder, module, "csv"):
        out += [int(line.split(",")[2]) for line in path.read_text().splitlines()[1:]]
    return out


async def test_chunks_roll_over_each_hour_and_a_closed_chunk_never_changes(tmp_path: Path) -> None:
    clock = SetClock()
    async with Recorder(tmp_path, clock) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        for seq in range(1, 11):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
        await rec.flush()
        clock.advance(3600)  # 14:00
        rec.ingest("bench-1", "ph1", "data", data(11, {"ph": 7.1}, at=3600), 0.0)
        await rec.flush()
        folder = tmp_path / UNIT_DIR
        first, second = (p for _, _, p in chunks_of(folder, "ph1", "csv"))
        assert (first.name, second.name) == ("ph1.2026-12-01T13.csv", "ph1.2026-12-01T14.csv")
        closed, grown = digest(first), second.read_bytes()
        # A backlog measured in the 13:00 hour arrives now: it goes into the open chunk.
        for seq in range(12, 20):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.2}, at=60, hist=True), 0.0)
        await rec.flush()
    async with Recorder(tmp_path, clock) as rec:  # a restart in the same hour continues the open chunk
        rec.ingest("bench-1", "ph1", "data", data(20, {"ph": 7.3}, at=3610), 0.0)
        await rec.flush()
    assert digest(first) == closed
    assert second.read_bytes().startswith(grown)
    assert seqs_in(folder) == list(range(1, 21))
    assert [p.name for _, _, p in chunks_of(folder, "ph1", "csv")] == [first.name, second.name]


async def test_a_clock_set_back_keeps_writing_the_newest_chunk(tmp_path: Path) -> None:
    clock = SetClock()
    clock.advance(7200)
    async with Recorder(tmp_path, clock) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()}, started_at=T0.timestamp())
        rec.ingest("bench-1", "ph1", "data", data(1, {"ph": 7.0}), 0.0)
        await rec.flush()
        clock.advance(-3600)
        rec.ingest("bench-1", "ph1", "data", data(2, {"ph": 7.0}), 0.0)
        await rec.flush()
    assert [p.name for _, _, p in chunks_of(tmp_path / UNIT_DIR, "ph1", "csv")] == ["ph1.2026-12-01T15.csv"]
    assert seqs_in(tmp_path / UNIT_DIR) == [1, 2]


async def test_a_new_value_name_starts_a_new_part_with_the_wider_header(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        rec.ingest("bench-1", "ph1", "data", data(1, {"ph": 7.0}), 0.0)
        await rec.flush()
        first = next(p for _, _, p in chunks_of(tmp_path / UNIT_DIR, "ph1", "csv"))
        before = digest(first)
        rec.ingest("bench-1", "ph1", "data", data(2, {"ph": 7.0, "mv": 12.5}), 0.0)
        await rec.flush()
    parts = [p for _, _, p in chunks_of(tmp_path / UNIT_DIR, "ph1", "csv")]
    assert [p.name for p in parts] == ["ph1.2026-12-01T13.csv", "ph1.2026-12-01T13_02.csv"]
    assert digest(first) == before
    assert parts[1].read_text().splitlines() == ["ts_utc,elapsed_s,seq,ph,mv",
                                                 "2026-12-01T13:00:02.000Z,2.000,2,7.0,12.5"]


async def test_a_torn_last_line_is_cut_back_on_start_and_reported(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        for seq in range(1, 4):
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
        await rec.flush()
    chunk = tmp_path / UNIT_DIR / "ph1.2026-12-01T13.csv"
    whole = chunk.read_bytes()
    with chunk.open("ab") as f:
        f.write(b"2026-12-01T13:00:04.000Z,4.0")  # the crash came mid-line
    seen: list[RecorderEvent] = []
    async with Recorder(tmp_path, SetClock(), on_event=seen.append) as rec:
        assert chunk.read_bytes() == whole
        rec.ingest("bench-1", "ph1", "data", data(4, {"ph": 7.0}), 0.0)
        await rec.flush()
        stored = rec.events(code="torn_line_repaired")
    assert [e.code for e in seen] == ["torn_line_repaired"]
    assert stored[0]["data"]["bytes"] == len(b"2026-12-01T13:00:04.000Z,4.0")
    assert chunk.read_bytes().startswith(whole) and seqs_in(tmp_path / UNIT_DIR) == [1, 2, 3, 4]


async def test_lines_the_files_got_before_a_crash_are_not_written_twice(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        rec.ingest("bench-1", "ph1", "data", data(1, {"ph": 7.0}), 0.0)
        await rec.flush()
    chunk = tmp_path / UNIT_DIR / "ph1.2026-12-01T13.csv"
    with chunk.open("a") as f:  # written, then the process died before the database committed seq 2
        f.write("2026-12-01T13:00:02.000Z,2.000,2,7.0\n")
    async with Recorder(tmp_path, SetClock()) as rec:
        for seq in (2, 3):  # the broker delivers seq 2 again
            rec.ingest("bench-1", "ph1", "data", data(seq, {"ph": 7.0}), 0.0)
        await rec.flush()
        assert rec.seqs("bench-1", "ph1") == [1, 2, 3]
    assert seqs_in(tmp_path / UNIT_DIR) == [1, 2, 3]


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    class FullAfter(FileOps):
        def __init__(self) -> None:
            self.full = False

        def write(self, fd: int, data: bytes) -> None:
            if self.full:
                super().write(fd, data[: len(data) // 2])  # part of the batch got out, then ENOSPC
                raise OSError(28, "No space left on device")
            super().write(fd, data)

    ops = FullAfter()
    stream = ChunkStream(tmp_path, "events", "jsonl", ops)
    stream.add('{"a":1}\n')
    stream.write(T0.timestamp())
    stream.commit()
    ops.full = True
    stream.add('{"b":2}\n')
    stream.add('{"c":3}\n')
    with pytest.raises(OSError, match="No space"):
        stream.write(T0.timestamp())
    assert (tmp_path / "events.2026-12-01T13.jsonl").read_bytes() == b'{"a":1}\n'
