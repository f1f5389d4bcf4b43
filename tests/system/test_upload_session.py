"""Acceptance: a session started and stopped by a unit's buttons uploads exactly the final files, verified.

A real hub process (`labedge hub run`), real Mosquitto, a unit on mock pins and
gcp-storage-emulator (which checks every upload's MD5) on a free loopback port.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.upload.settings import StorageConfig, UploadConfig
from hub.upload.transfer import Bucket
from provisioning.broker import MosquittoProcess
from tests.hub.sessions.system_rig import caller, running_hub, session_of
from tests.hub.upload.emulators import BUCKET, Emulator, GcpStorageEmulator, running
from tests.hub.upload.helpers import aged
from tests.rig import probe
from tests.system.inproc import running_unit
from tests.system.test_sessions import START_PIN, STOP_PIN, press, unit_dir

pytestmark = pytest.mark.system


@pytest.fixture
def gcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    for emu in running(GcpStorageEmulator, tmp_path / "gcs"):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emu.url)  # the hub process inherits it
        yield emu


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


async def test_a_button_session_uploads_exactly_the_final_versions_and_closes(
        tmp_path: Path, mosquitto: MosquittoProcess, gcs: Emulator) -> None:
    unit, port = "upl-btn", mosquitto.port
    watch = tmp_path / "instrument"
    watch.mkdir()
    (watch / "earlier.csv").write_text("from an earlier session\n")
    aged(watch / "earlier.csv")
    extra = (f"storage: {{bucket: {BUCKET}, prefix: lab1}}\n"
             "upload: {scan_s: 0.5, stable_s: 0.3, final_timeout_s: 20}\n"
             f"watch:\n  {unit}:\n    - {{path: {watch}, include: ['*.csv', '*.txt'], ignore: ['*.tmp']}}\n")
    async with probe("127.0.0.1", port, pattern="lab/#") as found, \
            running_hub(tmp_path, port, "hub-upl", extra=extra), caller(port, found) as hub:
        await hub.until_answering()
        async with running_unit(unit_dir(tmp_path), unit, port) as rig:
            await found.wait_for(lambda: (r := (hub.found.last("lab/hub/$state") or {})) and r.get("online"),
                                 10, "the hub online")
            await press(rig, START_PIN)
            opened = await found.wait_for(lambda: session_of(found, unit).get("state") == "open"
                                          and session_of(found, unit), 15, "the session opened by the button")
            (watch / "run1.csv").write_text("t,v\n0,1\n")
            (watch / "notes.txt").write_text("draft\n")
            (watch / "scratch.tmp").write_text("never uploaded\n")
            await found.wait_for(lambda: (session_of(found, unit).get("upload") or {}).get("files_done", 0)
                                 >= 2, 20, "the first versions uploaded")
            (watch / "run1.csv").write_text("t,v\n0,1\n1,2\n2,3\n")  # changed after its upload
            (watch / "notes.txt").write_text("final notes\n")
            (watch / "run2.csv").write_text("t,v\n5,6\n")
            await press(rig, STOP_PIN)
            closed = await found.wait_for(lambda: (s := session_of(found, unit)).get("state") == "closed"
                                          and s, 60, "the session closed, verified")
    assert closed["id"] == opened["id"] and closed["ended_by"] == "button"
    bucket = Bucket(StorageConfig(BUCKET, "lab1"), UploadConfig(), {"STORAGE_EMULATOR_HOST": gcs.url})
    prefix = f"lab1/{unit}/{opened['id']}/"
    held = {k[len(prefix):]: v for k, v in bucket.list(prefix).items()}
    watched = sorted(k for k in held if not k.startswith("recorded/"))
    assert watched == ["notes.txt", "run1.csv", "run2.csv"]
    for rel in watched:
        assert held[rel].md5 == md5(watch / rel), rel
        assert held[rel].metadata["session"] == opened["id"] and held[rel].metadata["unit"] == unit
    recorded = sorted(k for k in held if k.startswith("recorded/"))
    session_dir = tmp_path / "hub" / "data" / "sessions" / opened["id"]
    assert "recorded/run.json" in recorded  # the recorder's files of the session, with its end
    for rel in recorded:
        assert held[rel].md5 == md5(session_dir / rel[len("recorded/"):]), rel


def manifest(data_dir: Path) -> dict[str, tuple[str, int]]:
    """rel -> (state, uploads) as the hub stored them."""
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


async def test_a_hub_killed_mid_upload_resends_only_that_file_and_closes_verified(
        tmp_path: Path, mosquitto: MosquittoProcess, gcs: Emulator) -> None:
    unit, port = "upl-kill", mosquitto.port
    watch = tmp_path / "instrument"
    watch.mkdir()
    data_dir = tmp_path / "hub" / "data"
    extra = (f"storage: {{bucket: {BUCKET}, prefix: lab1}}\n"
             "upload: {scan_s: 0.3, stable_s: 0.2, final_timeout_s: 30, workers: 1, chunk_kib: 256}\n"
             f"watch:\n  {unit}:\n    - {{path: {watch}}}\n")
    async with probe("127.0.0.1", port, pattern="lab/#") as found, caller(port, found) as hub, \
            running_unit(unit_dir(tmp_path), unit, port) as rig:
        async with running_hub(tmp_path, port, "hub-upl-kill", extra=extra) as proc:
            await hub.until_answering()
            await press(rig, START_PIN)
            opened = await found.wait_for(lambda: session_of(found, unit).get("state") == "open"
                                          and session_of(found, unit), 15, "the session opened by the button")
            for i in range(3):
                (watch / f"small{i}.csv").write_text(f"row {i}\n" * 50)
            await found.wait_for(lambda: all(manifest(data_dir).get(f"small{i}.csv", ("", 0))[0] == "done"
                                             for i in range(3)), 20, "the small files uploaded")
            (watch / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))  # 128 chunks of 256 KiB
            await found.wait_for(lambda: manifest(data_dir).get("big.bin", ("", 0))[0] == "uploading", 20,
                                 "the big file on its way")
            await asyncio.sleep(0.3)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert manifest(data_dir)["big.bin"][0] == "uploading", "it landed before the kill: nothing proven"
        bucket = Bucket(StorageConfig(BUCKET, "lab1"), UploadConfig(), {"STORAGE_EMULATOR_HOST": gcs.url})
        prefix = f"lab1/{unit}/{opened['id']}/"
        before = {k: v.generation for k, v in bucket.list(prefix).items()  # run.json is rewritten: not kept
                  if not k.endswith("big.bin") and "/recorded/" not in k}
        async with running_hub(tmp_path, port, "hub-upl-kill", "hub-2.log", extra=extra):
            await hub.until_answering()
            await found.wait_for(lambda: manifest(data_dir).get("big.bin", ("", 0))[0] == "done", 60,
                                 "the big file sent again after the restart")
            await press(rig, STOP_PIN)
            closed = await found.wait_for(lambda: (s := session_of(found, unit)).get("state") == "closed"
                                          and s, 60, "the session closed, verified")
    assert closed["id"] == opened["id"]
    held = {k[len(prefix):]: v for k, v in bucket.list(prefix).items()}
    assert sorted(k for k in held if not k.startswith("recorded/")) == ["big.bin", "small0.csv", "small1.csv",
                                                                         "small2.csv"]
    assert held["big.bin"].md5 == md5(watch / "big.bin")
    after = {k: v.generation for k, v in bucket.list(prefix).items() if k in before}
    assert after == before, "a file completed before the kill was uploaded again"
    assert all(n == 1 for rel, (_, n) in manifest(data_dir).items() if not rel.startswith("recorded/"))


async def test_the_bucket_away_mid_session_then_back_the_session_closes_verified(
        tmp_path: Path, mosquitto: MosquittoProcess, gcs: Emulator) -> None:
    """The real hub through an outage of a few real seconds (test_faults.py: a minute of the hub's clock)."""
    unit, port = "upl-out", mosquitto.port
    watch = tmp_path / "instrument"
    watch.mkdir()
    data_dir = tmp_path / "hub" / "data"
    extra = (f"storage: {{bucket: {BUCKET}, prefix: lab1}}\n"
             "upload: {scan_s: 0.3, stable_s: 0.2, final_timeout_s: 20, timeout_s: 1, retry_max_s: 1}\n"
             f"watch:\n  {unit}:\n    - {{path: {watch}}}\n")
    async with probe("127.0.0.1", port, pattern="lab/#") as found, \
            running_hub(tmp_path, port, "hub-upl-out", extra=extra), caller(port, found) as hub:
        await hub.until_answering()
        async with running_unit(unit_dir(tmp_path), unit, port) as rig:
            await press(rig, START_PIN)
            opened = await found.wait_for(lambda: session_of(found, unit).get("state") == "open"
                                          and session_of(found, unit), 15, "the session opened by the button")
            (watch / "before.csv").write_text("before the outage\n")
            await found.wait_for(lambda: manifest(data_dir).get("before.csv", ("", 0))[0] == "done", 20,
                                 "the first file uploaded")
            gcs.stop()
            (watch / "during.csv").write_text("written while the bucket is away\n")
            await found.wait_for(lambda: manifest(data_dir).get("during.csv", ("", 0))[0] in ("pending",
                                                                                             "uploading"),
                                 20, "the new file pending")
            await press(rig, STOP_PIN)
            def missing() -> dict[str, Any] | None:
                s = session_of(found, unit)
                return s if "not verified" in (s.get("reason") or "") else None

            waiting = await found.wait_for(missing, 30, "the final transfer saying what it misses")
            assert waiting["state"] == "closing" and "during.csv" in waiting["reason"]
            gcs.start()  # the same port, the same stored objects
            closed = await found.wait_for(lambda: (s := session_of(found, unit)).get("state") == "closed"
                                          and s, 60, "the session closed, verified")
    assert closed["id"] == opened["id"]
    bucket = Bucket(StorageConfig(BUCKET, "lab1"), UploadConfig(), {"STORAGE_EMULATOR_HOST": gcs.url})
    prefix = f"lab1/{unit}/{opened['id']}/"
    held = {k[len(prefix):]: v for k, v in bucket.list(prefix).items()}
    assert sorted(k for k in held if not k.startswith("recorded/")) == ["before.csv", "during.csv"]
    assert all(held[rel].md5 == md5(watch / rel) for rel in ("before.csv", "during.csv"))
