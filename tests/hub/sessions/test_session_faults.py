"""The session log under faults: damaged upload logs, press times, a clock set back, a full disk, races."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.sessions.log import LOG_NAME, UPLOADS_DIR, SessionLog
from hub.sessions.model import SessionRefused, SessionSource, SessionState
from hub.sessions.publisher import SessionPublisher
from hub.sessions.service import NoUploads, SessionService
from hub.sessions.storage import SessionLogCorrupt
from lecis.clock import iso_ts
from lecis.topics import Topics
from tests.hub.sessions.test_service import FakeRecorder, service, until

BUTTON, CLI = SessionSource.BUTTON, SessionSource.CLI
NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class ManualClock:
    """Wall time set by the test (it can go back, as after an NTP step); sleeps are real and short."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.01))

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)

    def set(self, moment: datetime) -> None:
        self.moment = moment


def manual(tmp: Path, clock: ManualClock, recorder: Any = None) -> SessionService:
    return SessionService(tmp / LOG_NAME, tmp, clock, recorder or FakeRecorder(), NoUploads())


async def closed_session(tmp: Path, *, open_too: bool = False) -> tuple[str, str | None]:
    """A log with a closed session with an upload log (and an open one with its own, if asked)."""
    async with service(tmp) as sessions:
        done = await sessions.start("bench-1", source=CLI)
        sessions.upload_file(done.id, {"path": "a.csv", "size": 3, "md5": "x"})
        await sessions.stop("bench-1", source=CLI)
        await until(lambda: sessions.get(done.id).state is SessionState.CLOSED)
        still = None
        if open_too:
            still = (await sessions.start("bench-2", source=CLI)).id
            sessions.upload_file(still, {"path": "b.csv", "size": 3, "md5": "y"})
    return done.id, still


@pytest.mark.parametrize("which", ["closed", "open"])
async def test_a_damaged_upload_log_refuses_the_start_naming_it_and_is_left_alone(tmp_path: Path,
                                                                                  which: str) -> None:
    done, still = await closed_session(tmp_path, open_too=True)
    damaged = tmp_path / UPLOADS_DIR / f"{done if which == 'closed' else still}.json"
    damaged.write_bytes(damaged.read_bytes()[:-7])  # cut short, as a failing disk would
    before = damaged.read_bytes()
    with pytest.raises(SessionLogCorrupt) as raised:
        async with service(tmp_path):
            pass
    message = str(raised.value)
    assert str(damaged) in message and "not JSON" in message and f"mv {damaged} {damaged}.damaged" in message
    assert "upload log afresh" in message and "uploader's own manifest" in message
    assert damaged.read_bytes() == before, "never replaced by an empty upload log"


async def test_check_reports_a_damaged_log_or_upload_log_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done, _ = await closed_session(data)
    config = tmp_path / "hub.yaml"
    config.write_text(f"hub: hub-1\nbroker: {{host: 127.0.0.1, port: 1}}\ndata_dir: {data}\n")

    def check() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "labedge", "hub", "run", "--config", str(config), "--check"]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    fine = check()
    assert fine.returncode == 0 and "session log: 1 sessions" in fine.stdout, fine.stderr
    uploads = data / UPLOADS_DIR / f"{done}.json"
    uploads.write_text("{")
    tmp_file = data / (LOG_NAME + ".tmp")  # a running hub's write in progress: --check must not remove it
    tmp_file.write_text("half")
    damaged = check()
    assert damaged.returncode == 2 and str(uploads) in damaged.stderr and "not JSON" in damaged.stderr
    assert tmp_file.read_text() == "half" and uploads.read_text() == "{"
    (data / LOG_NAME).write_text('{"sessions": [1]}')
    bad_log = check()
    assert bad_log.returncode == 2 and f"{data / LOG_NAME}: the session log cannot be read" in bad_log.stderr
    assert "Traceback" not in bad_log.stderr


async def test_a_queued_press_starts_the_session_at_its_own_time_when_plausible(tmp_path: Path) -> None:
    clock = ManualClock(NOON)
    async with manual(tmp_path, clock) as sessions:
        pressed = iso_ts(NOON - timedelta(minutes=10))  # pressed while the hub was down
        first = await sessions.start("bench-1", source=BUTTON, pressed_at=pressed)
        assert first.started_at == pressed
        start = sessions.events(first.id)[0]
        assert start["data"]["pressed_at"] == pressed and start["data"]["accepted_at"] == iso_ts(NOON)
        clock.advance(60)
        stopped = await sessions.stop("bench-1", source=BUTTON)
        assert stopped.ended_at == iso_ts(NOON + timedelta(seconds=60))
        now = iso_ts(clock.now())
        for implausible in (iso_ts(NOON - timedelta(minutes=5)),  # before the previous session ended
                            iso_ts(clock.now() + timedelta(hours=1)),  # in the future
                            "1970-01-01T00:00:00.000Z",  # a unit whose clock was reset
                            "yesterday", "2026-03-01T12:00:00+01:00"):
            session = await sessions.start("bench-1", source=BUTTON, pressed_at=implausible)
            assert session.started_at == now, implausible
            await sessions.stop("bench-1", source=BUTTON)
        other = await sessions.start("bench-2", source=BUTTON, pressed_at=iso_ts(NOON - timedelta(days=2)))
        assert other.started_at == iso_ts(NOON - timedelta(days=2)), "a press queued over a weekend"


async def test_a_stop_and_a_start_pressed_while_the_hub_was_down_keep_their_times(tmp_path: Path) -> None:
    clock = ManualClock(NOON)
    async with manual(tmp_path, clock) as sessions:
        first = await sessions.start("bench-1", source=BUTTON)
        clock.advance(3600)  # the hub is down from here; the presses wait at the broker
        stop_at, start_at = iso_ts(NOON + timedelta(minutes=20)), iso_ts(NOON + timedelta(minutes=21))
        stopped = await sessions.stop("bench-1", source=BUTTON, pressed_at=stop_at)
        second = await sessions.start("bench-1", source=BUTTON, pressed_at=start_at)
        assert (stopped.ended_at, second.started_at) == (stop_at, start_at)
        assert sessions.events(first.id)[1]["data"]["pressed_at"] == stop_at
        with pytest.raises(SessionRefused):
            await sessions.stop("bench-2", source=BUTTON, pressed_at=stop_at)
        late = await sessions.stop("bench-1", source=BUTTON, pressed_at=iso_ts(NOON))  # before its start
        assert late.ended_at == iso_ts(clock.now())


async def test_a_clock_set_back_never_makes_an_older_session_the_newest(tmp_path: Path) -> None:
    clock = ManualClock(NOON)
    async with manual(tmp_path, clock) as sessions:
        first = await sessions.start("bench-1", source=CLI)
        clock.advance(600)
        await sessions.stop("bench-1", source=CLI)
        ended = sessions.get(first.id).ended_at
        clock.set(NOON - timedelta(hours=2))  # NTP steps the clock back
        second = await sessions.start("bench-1", source=CLI)
        assert sessions.latest("bench-1") == second, "the retained topic shows the new session"
        assert second.started_at >= (ended or ""), "not started before the previous one ended"
        stopped = await sessions.stop("bench-1", source=CLI)
        assert (stopped.ended_at or "") >= stopped.started_at
        third = await sessions.start("bench-1", source=CLI)
        assert [s.id for s in sessions.list("bench-1")] == [third.id, second.id, first.id]
    async with manual(tmp_path, clock) as sessions:
        assert sessions.latest("bench-1") == third and sessions.current("bench-1") == third
        assert [s.id for s in sessions.list("bench-1")] == [third.id, second.id, first.id]


async def test_a_start_that_cannot_be_stored_closes_the_recorders_files_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = FakeRecorder()
    async with service(tmp_path, recorder=recorder) as sessions:
        assert sessions.log is not None

        def full_disk() -> None:
            raise OSError(28, "No space left on device")

        real = sessions.log.storage._flush
        monkeypatch.setattr(sessions.log.storage, "_flush", full_disk)
        with pytest.raises(OSError, match="No space left"):
            await sessions.start("bench-1", source=BUTTON)
        opened = [c for c in recorder.calls if c[0] == "open"]
        assert len(opened) == 1 and ("close", opened[0][1]) in recorder.calls, "no recording, no session"
        assert sessions.list() == [] and sessions.current("bench-1") is None
        monkeypatch.setattr(sessions.log.storage, "_flush", real)
        session = await sessions.start("bench-1", source=BUTTON)
        assert sessions.current("bench-1") == session


async def test_upload_rows_whose_write_fails_are_kept_and_written_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with service(tmp_path) as sessions:
        session = await sessions.start("bench-1", source=CLI)
        sessions.upload_file(session.id, {"path": "first.csv", "size": 1, "md5": "a"})
        await until(lambda: sessions.files(session.id))
        assert sessions.log is not None
        files = sessions.log._files[session.id].storage
        real = files._flush
        failing: list[int] = []

        def full_disk() -> None:
            failing.append(1)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(files, "_flush", full_disk)
        sessions.upload_file(session.id, {"path": "lost.csv", "size": 2, "md5": "b"})
        await until(lambda: failing)
        assert sessions.log.unsaved
        monkeypatch.setattr(files, "_flush", real)
        sessions.upload_file(session.id, {"path": "later.csv", "size": 3, "md5": "c"})
        await until(lambda: not sessions.log.unsaved)  # type: ignore[union-attr]
    on_disk = json.loads((tmp_path / UPLOADS_DIR / f"{session.id}.json").read_text())
    assert sorted(r["path"] for r in on_disk["files"].values()) == ["first.csv", "later.csv", "lost.csv"]
    log = SessionLog(tmp_path / LOG_NAME)
    try:
        uploaded = [e for e in log.events(session.id) if e["kind"] == "UPLOADED"]
        assert sum(e["data"]["count"] for e in uploaded) == 3, "every UPLOADED event kept"
    finally:
        log.close()


async def test_a_stop_while_closing_is_refused_naming_the_closing_session(tmp_path: Path) -> None:
    from tests.hub.sessions.test_service import FakeUploads

    uploads = FakeUploads()  # never verifies: the session stays closing
    async with service(tmp_path, uploads) as sessions:
        session = await sessions.start("bench-1", source=CLI)
        await sessions.stop("bench-1", source=BUTTON)
        for session_id in (None, session.id):
            with pytest.raises(SessionRefused, match=f"its session {session.id} was stopped at .* final "
                                                     "transfer runs"):
                await sessions.stop("bench-1", source=CLI, session_id=session_id)
        assert [e["kind"] for e in sessions.events(session.id)].count("END") == 1
        assert sessions.get(session.id).ended_by is BUTTON


async def test_start_and_stop_racing_from_button_and_cli_keep_one_open_session(tmp_path: Path) -> None:
    async with service(tmp_path) as sessions:
        for _ in range(20):
            calls = [sessions.start("bench-1", source=BUTTON), sessions.start("bench-1", source=CLI),
                     sessions.stop("bench-1", source=BUTTON), sessions.stop("bench-1", source=CLI)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert sum(not isinstance(r, BaseException) for r in results[:2]) == 1, results
            assert all(isinstance(r, (SessionRefused, type(results[0]))) for r in results)
            assert sum(not isinstance(r, BaseException) for r in results[2:]) == 1, "one stop, one refused"
        assert len(sessions.list(limit=1000)) == 20
        assert sessions.current("bench-1") is None
        for s in sessions.list(limit=1000):
            kinds = [e["kind"] for e in sessions.events(s.id)]
            assert kinds[:2] == ["START", "END"] and kinds.count("START") == kinds.count("END") == 1


class Retained:
    """A broker's retained messages: an empty payload clears one."""

    def __init__(self, held: dict[str, bytes]) -> None:
        self.held = held

    async def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        assert retain
        if payload:
            self.held[topic] = payload
        else:
            self.held.pop(topic, None)


async def test_after_the_log_was_moved_aside_stale_retained_sessions_are_cleared(tmp_path: Path) -> None:
    async with service(tmp_path) as sessions:
        old = await sessions.start("bench-1", source=CLI)
    stale = {"lab/hub/sessions/bench-1": json.dumps({"id": old.id, "state": "open"}).encode(),
             "lab/hub/sessions/bench-2": json.dumps({"id": "x", "state": "closing"}).encode()}
    (tmp_path / LOG_NAME).rename(tmp_path / (LOG_NAME + ".damaged"))  # the documented recovery
    broker = Retained(dict(stale))
    known = {"bench-1", "bench-3"}
    async with service(tmp_path) as sessions:
        publisher = SessionPublisher(sessions, broker.publish, Topics("lab"), sessions.clock, 0.0,
                                     known_units=lambda: set(known))
        async with publisher:
            await until(lambda: "lab/hub/sessions/bench-1" not in broker.held)
            new = await sessions.start("bench-3", source=CLI)
            await until(lambda: json.loads(broker.held.get("lab/hub/sessions/bench-3", b"{}")).get("id")
                        == new.id)
            known.add("bench-2")  # its $birth arrives after the start
            publisher.unit_seen("bench-2")
            await until(lambda: "lab/hub/sessions/bench-2" not in broker.held)
            count = publisher.published
            publisher.unit_seen("bench-2")  # births come again after reconnects: cleared once is enough
            await asyncio.sleep(0.05)
            assert publisher.published == count


async def test_a_restart_on_a_full_disk_still_recovers_the_open_session(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.sessions.storage import SafeJSONStorage
    from tests.hub.sessions.test_service import FakeUploads

    async with service(tmp_path) as sessions:
        kept = await sessions.start("bench-1", source=CLI)
    before = (tmp_path / LOG_NAME).read_bytes()

    def full_disk(self: SafeJSONStorage) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SafeJSONStorage, "_flush", full_disk)
    uploads = FakeUploads()
    async with service(tmp_path, uploads) as sessions:  # starts: the RECOVERED note waits for room
        assert sessions.current("bench-1") == kept and uploads.begun == [kept.id]
        assert (tmp_path / LOG_NAME).read_bytes() == before
        monkeypatch.undo()
        await sessions.start("bench-2", source=CLI)  # room again: the next write takes the note along
    async with service(tmp_path) as sessions:
        assert [e["kind"] for e in sessions.events(kept.id)][:2] == ["START", "RECOVERED"]


async def test_recorder_files_of_a_start_cut_short_are_closed_open_ones_reopened(tmp_path: Path) -> None:
    async with service(tmp_path) as sessions:
        kept = await sessions.start("bench-1", source=CLI)
        ended = await sessions.start("bench-2", source=CLI)
        await sessions.stop("bench-2", source=CLI)
    folder = tmp_path / "sessions"
    orphan = folder / "0b4c3c9e-8a51-4c2e-9a0e-5b1f0c7d2a11"  # opened in the recorder, then kill -9
    for path, ended_at in ((orphan, None), (folder / ended.id, "2026-03-01T12:00:01.000Z"),
                           (folder / "6f1d0d3a-1111-4aaa-8bbb-0123456789ab", "2026-03-01T12:00:01.000Z")):
        path.mkdir(parents=True)
        (path / "run.json").write_text(json.dumps({"id": path.name, "ended_at": ended_at}))
    (folder / "not-a-run").mkdir()
    recorder = FakeRecorder()
    async with service(tmp_path, recorder=recorder):
        assert ("close", orphan.name) in recorder.calls, "the orphan's files are ended"
        assert ("open", kept.id, "bench-1") in recorder.calls, "the open session's files are (re)opened"
        closes = [c for c in recorder.calls if c[0] == "close" and c[1] != ended.id]  # ended: maybe closing
        assert closes == [("close", orphan.name)], "ended files and other folders are left alone"
