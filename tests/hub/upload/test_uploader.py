"""The uploader against gcp-storage-emulator (which checks every MD5): a session's changed files, verified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.upload import job
from hub.upload.uploader import Uploader
from lecis.clock import ScaledClock
from tests.hub.upload.emulators import Emulator
from tests.hub.upload.helpers import Calls, aged, hub_config, md5, new_session, objects


async def until(pred, clock: ScaledClock, limit_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = clock.monotonic() + limit_s
    while not pred():
        assert clock.monotonic() < deadline, "condition not reached"
        await clock.sleep(0.1)


async def test_a_session_uploads_what_changed_and_closes_verified(tmp_path: Path, gcs_md5: Emulator) -> None:
    watch = tmp_path / "out"
    (watch / "sub").mkdir(parents=True)
    (watch / "old.csv").write_text("before the session\n")
    (watch / "edited.csv").write_text("v1\n")
    aged(watch / "old.csv", watch / "edited.csv")
    config = hub_config(tmp_path, watch)
    clock = ScaledClock(10)
    calls = Calls()
    session = new_session(clock)
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        (watch / "a.csv").write_text("1,2\n")
        (watch / "sub" / "b d#é.txt").write_text("odd name\n")
        (watch / "skip.tmp").write_text("ignored\n")
        (watch / "edited.csv").write_text("v2, longer\n")
        await until(lambda: up.progress(session.id).files_done == 3, clock)
        (watch / "a.csv").write_text("1,2\n3,4\n")  # changed again after its upload
        result = await up.finish(session)
    assert result.verified, result.summary()
    held = objects(config, gcs_md5, session)
    assert sorted(held) == ["a.csv", "edited.csv", "sub/b d#é.txt"]
    for rel, obj in held.items():
        assert obj.md5 == md5(watch / rel)
        assert obj.metadata["md5"] == obj.md5 and obj.metadata["session"] == session.id
        assert obj.metadata["unit"] == "bench-1"
        assert obj.metadata["mtime_ns"] == str(os.stat(watch / rel).st_mtime_ns)
    assert result.objects == 3
    assert calls.progress[-1].files_pending == 0 and calls.progress[-1].files_done == 3


async def test_offline_everything_stays_pending_and_finish_says_what_is_missing(
        tmp_path: Path, gcs_md5: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    config = hub_config(tmp_path, watch,
                        upload="{scan_s: 1, stable_s: 0.5, final_timeout_s: 5, timeout_s: 1, retry_max_s: 1}")
    clock = ScaledClock(10)
    calls = Calls()
    session = new_session(clock)
    gcs_md5.stop()
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        (watch / "a.csv").write_text("1\n")
        (watch / "b.csv").write_text("2\n")
        result = await up.finish(session)
        assert not result.verified
        assert set(result.missing) == {"a.csv", "b.csv"}
        assert "unreachable" in result.details["error"]
        assert up.progress(session.id).files_pending == 2
        gcs_md5.start()  # the bucket is back: the session log's next try closes it
        await clock.sleep(2)  # past the backoff (retry_max_s)
        again = await up.finish(session)
    assert again.verified, again.summary()
    assert sorted(objects(config, gcs_md5, session)) == ["a.csv", "b.csv"]


async def test_a_file_deleted_before_upload_is_recorded_once(tmp_path: Path, gcs_md5: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    config = hub_config(tmp_path, watch,
                        upload="{scan_s: 1, stable_s: 30, final_timeout_s: 40, timeout_s: 2}")
    clock = ScaledClock(10)
    calls = Calls()
    session = new_session(clock)
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        (watch / "brief.csv").write_text("gone soon\n")
        (watch / "moved.csv").write_text("renamed soon\n")
        await until(lambda: up.progress(session.id).files_pending == 2, clock)
        (watch / "brief.csv").unlink()
        (watch / "moved.csv").rename(watch / "final.csv")
        await until(lambda: len(calls.status("gone")) == 2, clock)
        await clock.sleep(5)  # more scans: not reported (or tried) again
        result = await up.finish(session)
    assert sorted(calls.status("gone")) == ["brief.csv", "moved.csv"]
    assert result.verified, result.summary()
    assert sorted(result.details["gone"]) == ["brief.csv", "moved.csv"]
    assert sorted(objects(config, gcs_md5, session)) == ["final.csv"]


async def test_odd_files_are_reported_and_the_others_still_go_up(tmp_path: Path, gcs_md5: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    outside = tmp_path / "secret.csv"
    outside.write_text("not for the bucket\n")
    config = hub_config(tmp_path, watch)
    clock = ScaledClock(10)
    calls = Calls()
    session = new_session(clock)
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        (watch / "link.csv").symlink_to(outside)
        os.mkfifo(watch / "pipe.csv")
        (watch / "line\nbreak.csv").write_text("x\n")
        (watch / os.fsdecode(b"bad\xff.csv")).write_text("x\n")
        locked = watch / "locked.csv"
        locked.write_text("x\n")
        locked.chmod(0)
        (watch / "fine.csv").write_text("ok\n")
        (watch / "100% a?b #1 über.csv").write_text("a name the bucket takes\n")
        result = await up.finish(session)
    held = objects(config, gcs_md5, session)
    skipped = {r["path"]: r["error"] for r in calls.files if r["status"] in ("skipped", "error")}
    assert "fine.csv" in held and "100% a?b #1 über.csv" in held and "link.csv" not in held
    assert "outside the watched folder" in skipped["link.csv"]
    assert "not a regular file" in skipped["pipe.csv"]
    assert "line break" in skipped["line\nbreak.csv"]
    assert any("not valid UTF-8" in why for why in skipped.values())
    if os.geteuid() != 0:  # root reads a mode-0 file anyway
        assert "cannot be read" in skipped["locked.csv"]
        assert any(f.startswith("locked.csv") for f in result.failed)
    else:
        assert "locked.csv" in held


async def test_an_unreadable_file_is_reported_the_others_go_up_and_the_close_names_it(
        tmp_path: Path, gcs_md5: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    config = hub_config(tmp_path, watch)
    clock = ScaledClock(10)
    calls = Calls()
    session = new_session(clock)
    real = job.md5_file

    def md5_file(path: Path, limit: int | None = None) -> tuple[str, int]:  # as a share refusing one file
        if path.name == "locked.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, limit)

    monkeypatch.setattr(job, "md5_file", md5_file)
    async with Uploader(config, config.data_dir, clock, calls.on_progress, calls.on_file,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        await until(lambda: up.progress(session.id).last_scan_at is not None, clock)
        (watch / "locked.csv").write_text("x\n")
        (watch / "fine.csv").write_text("ok\n")
        await until(lambda: calls.status("error") == ["locked.csv"], clock)
        assert up.progress(session.id).errors == 1
        result = await up.finish(session)
    assert not result.verified
    assert result.failed == ("locked.csv: cannot be read (Permission denied); fix its permissions: it is "
                             "tried again when it changes and at the session's close",)
    assert sorted(objects(config, gcs_md5, session)) == ["fine.csv"]


async def test_a_file_written_after_the_start_but_before_the_first_scan_is_the_sessions(
        tmp_path: Path, gcs_md5: Emulator) -> None:
    watch = tmp_path / "out"
    watch.mkdir()
    (watch / "earlier.csv").write_text("an earlier run\n")
    aged(watch / "earlier.csv")
    config = hub_config(tmp_path, watch)
    clock = ScaledClock(10)
    session = new_session(clock)  # accepted now; the uploader's first scan comes later
    (watch / "first.csv").write_text("written the moment the session started\n")
    async with Uploader(config, config.data_dir, clock, lambda s, p: None, lambda s, r: None,
                        env={"STORAGE_EMULATOR_HOST": gcs_md5.url}) as up:
        up.begin(session)
        result = await up.finish(session)
    assert result.verified, result.summary()
    assert sorted(objects(config, gcs_md5, session)) == ["first.csv"]
