"""Uploads and their checks on real emulators: MD5 on gcp-storage-emulator, generations on fake-gcs-server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.upload.hashing import md5_file
from hub.upload.settings import StorageConfig, UploadConfig
from hub.upload.transfer import Bucket, BucketUnreachable, ChecksumMismatch, ObjectConflict
from hub.upload.uploader import Uploader
from lecis.clock import ScaledClock
from tests.hub.upload.emulators import BUCKET, Emulator, free_port
from tests.hub.upload.helpers import Calls, hub_config, md5, new_session, objects
from tests.hub.upload.test_uploader import until


def bucket(emu: Emulator, chunk_kib: int = 8192) -> Bucket:
    return Bucket(StorageConfig(BUCKET, "t"), UploadConfig(chunk_kib=chunk_kib, timeout_s=2),
                  {"STORAGE_EMULATOR_HOST": emu.url})


def test_the_server_refuses_bytes_that_do_not_match_our_md5(tmp_path: Path, gcs_md5: Emulator) -> None:
    small, big = tmp_path / "s.bin", tmp_path / "b.bin"
    small.write_bytes(os.urandom(1000))
    big.write_bytes(os.urandom(1024 * 1024))
    b = bucket(gcs_md5, chunk_kib=256)  # b.bin goes up resumably, in 4 chunks
    for path in (small, big):
        digest, size = md5_file(path)
        stored = b.upload(path, f"t/{path.name}", digest, size, {"md5": digest}, 0)
        assert stored.md5 == digest and b.get(f"t/{path.name}") is not None
        with pytest.raises(ChecksumMismatch):
            b.upload(path, f"t/{path.name}.bad", "0" * 32, size, {}, 0)
    assert sorted(b.list("t/")) == ["t/b.bin", "t/s.bin"]  # the refused ones are not there


def test_a_generation_precondition_keeps_a_retry_from_overwriting(tmp_path: Path, gcs_gen: Emulator) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"first")
    b = bucket(gcs_gen)
    digest, size = md5_file(path)
    first = b.upload(path, "t/a.bin", digest, size, {}, 0)
    with pytest.raises(ObjectConflict):
        b.upload(path, "t/a.bin", digest, size, {}, 0)  # "must not exist yet"
    path.write_bytes(b"second")
    digest, size = md5_file(path)
    second = b.upload(path, "t/a.bin", digest, size, {}, first.generation)
    assert second.generation != first.generation
    with pytest.raises(ObjectConflict):
        b.upload(path, "t/a.bin", digest, size, {}, first.generation)  # a late retry of the second upload


def test_an_unreachable_bucket_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x")
    b = Bucket(StorageConfig(BUCKET, "t"), UploadConfig(timeout_s=1),
               {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(BucketUnreachable) as caught:
        b.upload(path, "t/a.bin", md5(path), 1, {}, 0)
    assert caught.value.transient


async def test_an_object_that_landed_before_a_crash_is_not_sent_again(
        tmp_path: Path, gcs_gen: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    config = hub_config(tmp_path, watch)
    clock = ScaledClock(10)
    session = new_session(clock)
    calls = Calls()
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_gen.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        # the object is there already, as a try cut by kill -9 after the bucket had it would leave it
        copy = tmp_path / "copy.csv"
        copy.write_text("sent by a hub that died before noting it\n")
        other = Bucket(config.storage, config.upload, {"STORAGE_EMULATOR_HOST": gcs_gen.url})  # type: ignore[arg-type]
        landed = other.upload(copy, f"lab1/bench-1/{session.id}/a.csv", md5(copy), copy.stat().st_size,
                              {"session": session.id, "unit": "bench-1"}, 0)
        (watch / "a.csv").write_text(copy.read_text())
        result = await up.finish(session)
    assert result.verified, result.summary()
    assert objects(config, gcs_gen, session)["a.csv"].generation == landed.generation
    (row,) = [r for r in calls.files if r["status"] == "uploaded"]  # told, though this hub did not send it
    assert row["generation"] == landed.generation and "not sent again" in row["note"]


async def test_an_object_someone_else_replaced_is_left_alone_and_reported(
        tmp_path: Path, gcs_gen: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    config = hub_config(tmp_path, watch)
    clock = ScaledClock(10)
    session = new_session(clock)
    calls = Calls()
    other = Bucket(config.storage, config.upload, {"STORAGE_EMULATOR_HOST": gcs_gen.url})  # type: ignore[arg-type]
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_gen.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        (watch / "a.csv").write_text("v1\n")
        await until(lambda: calls.status("uploaded") == ["a.csv"], clock)
        name = f"lab1/bench-1/{session.id}/a.csv"
        theirs = tmp_path / "theirs.csv"
        theirs.write_text("another writer's version\n")
        gen = other.get(name).generation  # type: ignore[union-attr]
        replaced = other.upload(theirs, name, md5(theirs), theirs.stat().st_size, {"session": "other"}, gen)
        (watch / "a.csv").write_text("v2 from the instrument\n")
        result = await up.finish(session)
    assert not result.verified and result.failed and result.failed[0].startswith("a.csv: ")
    assert "not overwritten" in result.failed[0]
    assert objects(config, gcs_gen, session)["a.csv"].generation == replaced.generation
