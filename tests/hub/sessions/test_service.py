"""SessionService: the rules, the states, the final transfer retried until verified, recovery on restart."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tinydb import TinyDB

from hub.sessions.log import LOG_NAME
from hub.sessions.model import (
    FinalTransfer,
    Session,
    SessionRefused,
    SessionSource,
    SessionState,
    UploadProgress,
)
from hub.sessions.service import NoUploads, SessionService, SessionUnknown
from hub.sessions.storage import SafeJSONStorage, SessionLogCorrupt
from lecis.clock import ScaledClock
from lecis.errors import CommandRejected

BUTTON, CLI = SessionSource.BUTTON, SessionSource.CLI


class FakeRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def open_session(self, session_id: str, unit: str, meta: dict[str, Any]) -> None:
        self.calls.append(("open", session_id, unit))

    def close_session(self, session_id: str) -> None:
        self.calls.append(("close", session_id))

    async def flush(self) -> None:
        self.calls.append(("flush",))


class FakeUploads:
    """Verifies only once `ok` is set; counts every call."""

    def __init__(self) -> None:
        self.begun: list[str] = []
        self.finishes = 0
        self.ok = asyncio.Event()
        self.figures = UploadProgress()

    def begin(self, session: Session) -> None:
        self.begun.append(session.id)

    async def finish(self, session: Session) -> FinalTransfer:
        self.finishes += 1
        if self.ok.is_set():
            return FinalTransfer(True, objects=3)
        return FinalTransfer(False, objects=1, missing=("data/a.csv", "data/b.csv"))

    def progress(self, session_id: str) -> UploadProgress:
        return self.figures


def clock() -> ScaledClock:
    return ScaledClock(1000.0, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


async def until(check: Any, timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := check()):
            await asyncio.sleep(0.005)
    return value


def service(tmp: Path, uploads: Any = None, recorder: Any = None) -> SessionService:
    return SessionService(tmp / LOG_NAME, tmp, clock(), recorder or FakeRecorder(), uploads or NoUploads())


async def test_one_open_session_per_unit_and_the_refusals_name_the_open_one(tmp_path: Path) -> None:
    recorder = FakeRecorder()
    async with service(tmp_path, recorder=recorder) as sessions:
        changes: list[Session] = []
        sessions.listeners.append(changes.append)
        first = await sessions.start("bench-1", source=BUTTON, user="ana", experiment="trial 3")
        assert first.state is SessionState.OPEN and len(first.id) == 36
        assert first.started_at.endswith("Z") and first.started_at.startswith("2026-03-01T12:")
        assert first.recorded_dir == tmp_path / "sessions" / first.id
        assert recorder.calls == [("open", first.id, "bench-1")]
        with pytest.raises(SessionRefused, match=f"already has an open session, {first.id}") as refused:
            await sessions.start("bench-1", source=CLI)
        assert refused.value.open_session == first and refused.value.kind.value == "state"
        other = await sessions.start("bench-2", source=CLI)  # another unit: its own session
        with pytest.raises(SessionRefused, match=f"not the open session of unit bench-1; the open one is "
                                                 f"{first.id}"):
            await sessions.stop("bench-1", source=CLI, session_id=other.id)
        closing = await sessions.stop("bench-1", source=BUTTON, session_id=first.id)
        assert closing.state is SessionState.CLOSING and closing.ended_by is BUTTON
        with pytest.raises(SessionRefused, match="bench-1 has no open session"):
            await sessions.stop("bench-1", source=CLI)
        closed = await until(lambda: (s := sessions.get(first.id)).state is SessionState.CLOSED and s)
        assert closed.ended_at is not None and closed.reason is None
        assert [e["kind"] for e in sessions.events(first.id)] == ["START", "END", "VERIFIED"]
        assert "no bucket configured" in sessions.events(first.id)[-1]["message"]
        assert ("close", first.id) in recorder.calls
        assert [s.state for s in changes if s.id == first.id] == [SessionState.OPEN, SessionState.CLOSING,
                                                                  SessionState.CLOSED]
        assert [s.id for s in sessions.list()] == [other.id, first.id]
        assert [s.id for s in sessions.list("bench-2")] == [other.id]
        assert sessions.current("bench-1") is None and sessions.current("bench-2") == other
        with pytest.raises(SessionUnknown):
            sessions.get("nope")
    doc = json.loads((tmp_path / LOG_NAME).read_text())
    assert set(doc) >= {"sessions", "events"}


async def test_the_final_transfer_retries_saying_what_is_missing_until_verified(tmp_path: Path) -> None:
    uploads = FakeUploads()
    async with service(tmp_path, uploads) as sessions:
        session = await sessions.start("bench-1", source=CLI)
        assert uploads.begun == [session.id]
        await sessions.stop("bench-1", source=CLI)
        waiting = await until(lambda: (s := sessions.get(session.id)).reason and "missing" in s.reason and s)
        assert waiting.state is SessionState.CLOSING
        assert "2 missing: data/a.csv, data/b.csv" in (waiting.reason or "")
        await until(lambda: uploads.finishes >= 3)  # retried (2 s, 4 s ... on the 1000x clock)
        errors = [e for e in sessions.events(session.id) if e["kind"] == "ERROR"]
        assert len(errors) == 1, "one ERROR while what is missing stays the same"
        uploads.ok.set()
        await until(lambda: sessions.get(session.id).state is SessionState.CLOSED)
        assert sessions.events(session.id)[-1]["kind"] == "VERIFIED"


async def test_after_a_restart_open_stays_open_and_closing_finishes(tmp_path: Path) -> None:
    uploads = FakeUploads()
    async with service(tmp_path, uploads) as sessions:
        kept = await sessions.start("bench-1", source=CLI)
        ending = await sessions.start("bench-2", source=CLI)
        await sessions.stop("bench-2", source=CLI)
    uploads2 = FakeUploads()
    uploads2.ok.set()
    async with service(tmp_path, uploads2) as sessions:
        assert sessions.current("bench-1") == kept
        assert kept.id in uploads2.begun, "its uploads resume"
        assert [e["kind"] for e in sessions.events(kept.id)] == ["START", "RECOVERED"]
        await until(lambda: sessions.get(ending.id).state is SessionState.CLOSED)
        assert "RECOVERED" in [e["kind"] for e in sessions.events(ending.id)]
        with pytest.raises(SessionRefused):
            await sessions.start("bench-1", source=BUTTON)


async def test_a_corrupt_log_refuses_to_open_and_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / LOG_NAME).write_text('{"sessions": {"1": {"id": "x"}}}')
    with pytest.raises(SessionLogCorrupt, match="is not a session"):
        async with service(tmp_path):
            pass
    assert (tmp_path / LOG_NAME).read_text() == '{"sessions": {"1": {"id": "x"}}}'


async def test_uploaded_files_are_logged_together(tmp_path: Path) -> None:
    async with service(tmp_path) as sessions:
        session = await sessions.start("bench-1", source=CLI)
        writes = sessions.log.storage.writes if sessions.log else 0
        for i in range(100):
            sessions.upload_file(session.id, {"path": f"f{i}.csv", "size": i, "md5": "x"})
        await until(lambda: len(sessions.files(session.id)) == 100)
        assert sessions.log is not None and sessions.log.storage.writes == writes + 1
        sessions.upload_file(session.id, {"path": "f1.csv", "size": 99, "md5": "y"})
        sessions.upload_file(session.id, {"path": "gone.csv", "error": "deleted before upload"})
    async with service(tmp_path) as sessions:
        files = {f["path"]: f for f in sessions.files(session.id)}
        assert len(files) == 101 and files["f1.csv"]["md5"] == "y"
        events = sessions.events(session.id)
        uploaded = [e for e in events if e["kind"] == "UPLOADED"]
        assert [e["data"]["count"] for e in uploaded] == [100, 1], "one UPLOADED per batch of files"
        assert uploaded[0]["message"].startswith("100 files uploaded (4950 bytes): f0.csv, f1.csv")
        errors = [e for e in events if e["kind"] == "ERROR"]
        assert [e["message"] for e in errors] == ["gone.csv: deleted before upload"]
    assert (tmp_path / "session_uploads" / f"{session.id}.json").exists(), "the session's own upload log"
    with TinyDB(tmp_path / LOG_NAME, storage=SafeJSONStorage) as db:  # tinydb reads what the log wrote
        assert len(db.table("sessions")) == 1 and len(db.table("events")) == 5


async def test_the_service_checks_what_the_dashboard_passes(tmp_path: Path) -> None:
    sessions = service(tmp_path)
    sessions.known_units = lambda: {"bench-1"}
    async with sessions:
        with pytest.raises(CommandRejected, match="unit bench-9 is not known to this hub") as raised:
            await sessions.start("bench-9", source=SessionSource.API)
        assert raised.value.param == "unit"
        with pytest.raises(CommandRejected, match="experiment holds a control"):
            await sessions.start("bench-1", source=SessionSource.API, experiment="a\x1b[2Jb")
        with pytest.raises(CommandRejected, match="is not a unit id"):
            await sessions.stop("../etc", source=SessionSource.API)
        # A button's unit proves itself: its press may come before its $birth after a restart.
        pressed = await sessions.start("bench-7", source=BUTTON)
        assert pressed.unit == "bench-7"
        assert sessions.list() == [pressed]


async def test_uploads_that_cannot_begin_and_a_log_write_that_fails_lose_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uploads = FakeUploads()

    def broken_begin(session: Session) -> None:
        raise OSError("watched folder on a share that is away")

    uploads.begin = broken_begin  # type: ignore[method-assign]
    async with service(tmp_path, uploads) as sessions:
        session = await sessions.start("bench-1", source=CLI)
        assert sessions.current("bench-1") == session, "open, though its uploads could not begin"
        assert "uploads could not begin: OSError" in sessions.events(session.id)[-1]["message"]
        assert sessions.log is not None
        real_save = sessions.log.save
        failures = []

        def save_once_failing(*args: Any, **kwargs: Any) -> None:
            if args[1] is not None and args[1].value == "VERIFIED" and not failures:
                failures.append(1)
                raise OSError(28, "No space left on device")
            real_save(*args, **kwargs)

        monkeypatch.setattr(sessions.log, "save", save_once_failing)
        uploads.ok.set()
        await sessions.stop("bench-1", source=CLI)
        await until(lambda: sessions.get(session.id).state is SessionState.CLOSED)
        assert failures == [1] and uploads.finishes == 2, "the write failed once, the transfer ran again"


async def test_a_change_that_cannot_be_written_changes_nothing(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async with service(tmp_path) as sessions:
        session = await sessions.start("bench-1", source=CLI)
        assert sessions.log is not None
        storage = sessions.log.storage
        real_flush = storage._flush

        def full_disk() -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(storage, "_flush", full_disk)
        with pytest.raises(OSError, match="No space left"):
            await sessions.stop("bench-1", source=CLI)
        assert sessions.current("bench-1") == session, "still open, in memory too"
        assert [e["kind"] for e in sessions.events(session.id)] == ["START"]
        monkeypatch.setattr(storage, "_flush", real_flush)
        await sessions.stop("bench-1", source=CLI)
        await until(lambda: sessions.get(session.id).state is SessionState.CLOSED)
    async with service(tmp_path) as sessions:
        assert [e["kind"] for e in sessions.events(session.id)] == ["START", "END", "VERIFIED"]
