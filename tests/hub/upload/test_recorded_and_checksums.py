"""The recorder's files go up as closed chunks; checksum_only catches rewrites keeping size and mtime."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from hub.upload.recorded import chunk_closed
from hub.upload.uploader import Uploader
from lecis.clock import ScaledClock
from tests.hub.upload.emulators import Emulator
from tests.hub.upload.helpers import Calls, aged, hub_config, md5, new_session, objects
from tests.hub.upload.test_uploader import until

NOW = datetime(2026, 12, 1, 13, 30, tzinfo=UTC)


def test_which_chunks_are_closed(tmp_path: Path) -> None:
    for name in ("ph1.2026-12-01T12.csv", "ph1.2026-12-01T13.csv", "ev.2026-12-01T13.jsonl",
                 "ev.2026-12-01T13_02.jsonl"):
        (tmp_path / name).write_text("x\n")
    assert chunk_closed(tmp_path / "ph1.2026-12-01T12.csv", NOW, False) is True  # its hour is over
    assert chunk_closed(tmp_path / "ph1.2026-12-01T13.csv", NOW, False) is False  # the open one
    assert chunk_closed(tmp_path / "ev.2026-12-01T13.jsonl", NOW, False) is True  # a later part exists
    assert chunk_closed(tmp_path / "ev.2026-12-01T13_02.jsonl", NOW, False) is False
    assert chunk_closed(tmp_path / "ph1.2026-12-01T13.csv", NOW, True) is True  # the session ended
    assert chunk_closed(tmp_path / "run.json", NOW, False) is None  # not a chunk


async def test_the_open_chunk_waits_until_closed_and_then_everything_is_verified(
        tmp_path: Path, gcs_md5: Emulator) -> None:
    watch, rec = tmp_path / "out", tmp_path / "sessions" / "s"
    watch.mkdir()
    (rec / "units" / "bench-1").mkdir(parents=True)
    (rec / "run.json").write_text(json.dumps({"id": "s", "ended_at": None}))
    old, live = rec / "units/bench-1/ph1.2026-12-01T12.csv", rec / "units/bench-1/ph1.2026-12-01T13.csv"
    old.write_text("ts_utc,ph\n2026-12-01T12:59:59.000Z,7.0\n")
    live.write_text("ts_utc,ph\n2026-12-01T13:00:00.000Z,7.1\n")
    config = hub_config(tmp_path, watch)
    clock = ScaledClock(10, start=NOW)
    calls = Calls()
    session = new_session(clock, recorded=rec)
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        await until(lambda: "recorded/units/bench-1/ph1.2026-12-01T12.csv" in calls.status("uploaded"), clock)
        with live.open("a") as fh:
            fh.write("2026-12-01T13:00:01.000Z,7.2\n")  # still growing
        await clock.sleep(5)  # several scans
        assert sorted(calls.status("uploaded")) == ["recorded/run.json",
                                                    "recorded/units/bench-1/ph1.2026-12-01T12.csv"]
        (rec / "run.json.tmp").write_text("being rewritten")  # never uploaded
        (rec / "run.json").write_text(json.dumps({"id": "s", "ended_at": "2026-12-01T13:30:09.000Z"}))
        result = await up.finish(session)
    assert result.verified, result.summary()
    held = objects(config, gcs_md5, session)
    assert sorted(held) == ["recorded/run.json", "recorded/units/bench-1/ph1.2026-12-01T12.csv",
                            "recorded/units/bench-1/ph1.2026-12-01T13.csv"]
    assert held["recorded/units/bench-1/ph1.2026-12-01T13.csv"].md5 == md5(live)
    assert calls.status("uploaded").count("recorded/units/bench-1/ph1.2026-12-01T13.csv") == 1  # sent once


async def test_checksum_only_catches_a_rewrite_that_keeps_size_and_mtime(
        tmp_path: Path, gcs_md5: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    kept = watch / "kept.bin"
    kept.write_bytes(b"AAAA")  # there before the session
    aged(kept)
    config = hub_config(tmp_path, watch, extra_watch=", checksum_only: true")
    clock = ScaledClock(10)
    calls = Calls()
    session = new_session(clock)

    def rewrite(path: Path, data: bytes) -> None:
        info = path.stat()
        path.write_bytes(data)
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # as some instruments do

    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        await clock.sleep(3)
        assert calls.status("uploaded") == []  # unchanged since the session began
        rewrite(kept, b"BBBB")
        await until(lambda: calls.status("uploaded") == ["kept.bin"], clock)
        rewrite(kept, b"CCCC")
        result = await up.finish(session)
    assert result.verified, result.summary()
    assert calls.status("uploaded") == ["kept.bin", "kept.bin"]
    assert objects(config, gcs_md5, session)["kept.bin"].md5 == md5(kept)
