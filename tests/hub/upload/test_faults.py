"""The issue's faults: the bucket away mid-session, the hub killed mid-upload, against real emulators."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from hub.upload.uploader import Uploader
from lecis.clock import ScaledClock
from tests.hub.upload.emulators import Emulator
from tests.hub.upload.helpers import Calls, hub_config, md5, new_session, objects
from tests.hub.upload.test_uploader import until

ROOT = Path(__file__).resolve().parents[3]


async def test_the_bucket_away_for_a_minute_then_every_file_lands_verified(
        tmp_path: Path, gcs_md5: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    config = hub_config(tmp_path, watch,
                        upload="{scan_s: 10, stable_s: 5, final_timeout_s: 30, timeout_s: 1, "
                               "retry_max_s: 20}")
    clock = ScaledClock(30)  # 60 s of the hub's time in 2 s
    calls = Calls()
    session = new_session(clock)
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        (watch / "before.csv").write_text("landed before the outage\n")
        await until(lambda: up.progress(session.id).files_done == 1, clock)
        gcs_md5.stop()
        outage_ends = clock.monotonic() + 60
        for i in range(5):
            (watch / f"during{i}.csv").write_text(f"written while the bucket is away {i}\n" * (i + 1))
        (watch / "before.csv").write_text("changed while the bucket is away\n")
        await until(lambda: clock.monotonic() >= outage_ends, clock, 120)
        assert up.progress(session.id).files_pending == 6  # nothing lost, nothing claimed done
        gcs_md5.start()  # the same port, the same stored objects
        await until(lambda: up.progress(session.id).files_pending == 0, clock, 120)
        result = await up.finish(session)
    assert result.verified, result.summary()
    held = objects(config, gcs_md5, session)
    assert sorted(held) == ["before.csv"] + [f"during{i}.csv" for i in range(5)]
    assert all(obj.md5 == md5(watch / rel) for rel, obj in held.items())


def _manifest_rows(data_dir: Path) -> dict[str, tuple[str, int]]:
    path = data_dir / "uploads.sqlite3"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT rel, state, uploads FROM files")}
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def _uploader(config_path: Path, sid: str, mode: str) -> subprocess.Popen[str]:
    script = Path(__file__).with_name("run_uploader.py")
    return subprocess.Popen([sys.executable, str(script), str(config_path), sid, mode], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait(pred, proc: subprocess.Popen[str], limit_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not pred():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_hub_killed_mid_upload_restarts_that_file_and_sends_no_completed_one_again(
        tmp_path: Path, gcs_gen: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    config = hub_config(tmp_path, watch,
                        upload="{scan_s: 0.2, stable_s: 0.2, final_timeout_s: 10, workers: 1, "
                               "chunk_kib: 256}")
    config_path = tmp_path / "hub.yaml"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_gen.url)  # the uploader's processes inherit it
    sid = str(uuid.uuid4())
    first = _uploader(config_path, sid, "begin")
    _wait(lambda: (config.data_dir / "uploads.sqlite3").exists() and
          _manifest_rows(config.data_dir) is not None, first)
    time.sleep(0.5)  # the baseline (empty) is stored
    for i in range(5):
        (watch / f"small{i}.csv").write_text(f"row {i}\n" * 100)
    _wait(lambda: sum(s == "done" for s, _ in _manifest_rows(config.data_dir).values()) == 5, first)
    (watch / "big.bin").write_bytes(os.urandom(16 * 1024 * 1024))  # 64 chunks of 256 KiB
    _wait(lambda: _manifest_rows(config.data_dir).get("big.bin", ("", 0))[0] == "uploading", first)
    time.sleep(0.3)  # some chunks are in
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    rows = _manifest_rows(config.data_dir)
    assert rows["big.bin"][0] == "uploading", "the upload ended before the kill: the test proves nothing"
    session = new_session(ScaledClock(1))
    session = type(session)(sid, session.unit, None, None, session.started_at, session.started_by)
    before = {rel: o.generation for rel, o in objects(config, gcs_gen, session).items()}
    assert "big.bin" not in before and len(before) == 5
    second = _uploader(config_path, sid, "finish")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["verified"], result["summary"]
    after = objects(config, gcs_gen, session)
    assert sorted(after) == ["big.bin"] + [f"small{i}.csv" for i in range(5)]
    assert {rel: after[rel].generation for rel in before} == before  # no completed file sent again
    assert after["big.bin"].md5 == md5(watch / "big.bin")
    assert all(uploads == 1 for _, uploads in _manifest_rows(config.data_dir).values())


async def test_stopping_the_hub_ends_a_long_upload_and_keeps_the_file_pending(
        tmp_path: Path, gcs_gen: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    config = hub_config(tmp_path, watch,
                        upload="{scan_s: 0.2, stable_s: 0.1, workers: 1, chunk_kib: 256}")
    clock = ScaledClock(1)
    session = new_session(clock)
    up = Uploader(config, config.data_dir, clock, lambda s, p: None, lambda s, r: None,
                  env={"STORAGE_EMULATOR_HOST": gcs_gen.url})
    async with up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        (watch / "big.bin").write_bytes(os.urandom(64 * 1024 * 1024))
        await until(lambda: _manifest_rows(config.data_dir).get("big.bin", ("", 0))[0] == "uploading", clock)
    for thread in threading.enumerate():  # the transfer thread stops at its next read, without finishing
        if thread.name.startswith("upload"):
            thread.join(60)
    assert "big.bin" not in objects(config, gcs_gen, session)
    assert _manifest_rows(config.data_dir)["big.bin"][0] == "uploading"  # sent again after the restart
