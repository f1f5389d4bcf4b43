"""The session lifecycle: one open session per unit, logged crash-safely, uploaded, closed once verified.

`async with SessionService(...) as sessions:` opens the log (SessionLogCorrupt:
the hub does not start) and recovers what a restart left: an open session
stays open, its uploads resume and a RECOVERED event says so; a closing
one resumes its final transfer. `start`/`stop` raise SessionRefused (a
`rejected` reply) when the rules say no. A stop returns once `closing` is
stored; the final transfer runs on, retried with capped backoff until
every file is verified (the session's `reason` says what is missing).
Every change goes to the `listeners` (the retained `lab/hub/sessions/U`
and the dashboard).
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from hub.sessions.checks import MAX_EXPERIMENT_CHARS, MAX_USER_CHARS, check_text, check_unit
from hub.sessions.log import SessionLog
from hub.sessions.model import (
    FinalTransfer,
    Session,
    SessionEventKind,
    SessionRefused,
    SessionSource,
    SessionState,
    SessionUploads,
    UploadProgress,
)
from lecis.clock import Clock, iso_ts, parse_ts
from lecis.errors import LabedgeError

log = logging.getLogger("labedge.hub.sessions")

RETRY_FIRST_S = 2.0  # the final transfer is tried again after this, doubling ...
RETRY_MAX_S = 60.0  # ... up to this
LISTED = 50  # paths kept per kind (missing, differ...) in a final transfer's ERROR event
FILE_LOG_DELAY_S = 0.5  # uploaded-file rows gathered at least this long and written together ...
FILE_LOG_SHARE = 0.05  # ... and longer when writing them takes more than this share of the time
PRESS_MAX_AGE = timedelta(days=7)  # an older press time is a unit's clock gone wrong, not a queued press
FILE_LOG_RETRY_S = 5.0  # rows whose write failed (disk full) are held in memory and written again after this


class SessionUnknown(LabedgeError, KeyError):
    """No session has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown session"


class NoUploads:
    """The uploads of a hub without `storage:` in hub.yaml: nothing goes up, closing verifies at once."""

    reason = "no bucket configured (no storage: in hub.yaml); the session's files stay in the data folder"

    def begin(self, session: Session) -> None:
        return None

    async def finish(self, session: Session) -> FinalTransfer:
        return FinalTransfer(True, details={"note": self.reason})

    def progress(self, session_id: str) -> UploadProgress:
        return UploadProgress()


Listener = Callable[[Session], None]


class SessionService:
    """Sessions of every unit; see the module docstring. `listeners` get every changed session."""

    def __init__(self, log_path: Path, data_dir: Path, clock: Clock, recorder: Any = None,
                 uploads: SessionUploads | None = None,
                 known_units: Callable[[], set[str]] | None = None) -> None:
        self.log_path = log_path
        self.data_dir = data_dir
        self.clock = clock
        self.recorder = recorder
        self.uploads: SessionUploads = uploads or NoUploads()
        # Units a session may be started for (the hub: $birth seen, script, watch:); None: any unit id.
        self.known_units = known_units
        self.listeners: list[Listener] = []
        self.progress_listeners: list[Callable[[Session, UploadProgress], None]] = []
        self.log: SessionLog | None = None
        self._lock = asyncio.Lock()
        self._finals: dict[str, asyncio.Task[None]] = {}
        self._file_rows: list[tuple[str, dict[str, Any], str]] = []
        self._file_flush: asyncio.TimerHandle | None = None
        self._file_delay = FILE_LOG_DELAY_S
        self._retrying = False  # the pending flush is a retry of rows whose write failed
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- life ---------------------------------------------------------------------------------
    async def __aenter__(self) -> SessionService:
        self._loop = asyncio.get_running_loop()
        self.log = SessionLog(self.log_path)  # SessionLogCorrupt: refused, the file untouched
        for session in self.log.all():
            if session.state is SessionState.OPEN:
                self._recovered(session, "the hub restarted; the session stays open and its uploads resume")
                self._begin(session)
                log.info("session %s of %s recovered: still open", session.id, session.unit)
            elif session.state is SessionState.CLOSING:
                self._recovered(session, "the hub restarted during the final transfer; it runs again")
                self._close_recorded(session)
                self._final(session)
                log.info("session %s of %s recovered: the final transfer runs again", session.id,
                         session.unit)
        self._reconcile_recorder()
        for session in self.latest_per_unit():
            self._changed(session)
        return self

    def _reconcile_recorder(self) -> None:
        """The recorder's session files as the log says. A start is opened in the recorder just before its
        START is stored: killed in between, the recorder would continue files of a session the log never
        had (closed here); and an open session whose files were never opened gets them (an open of open
        files only refreshes them)."""
        if self.recorder is None:
            return
        known = {s.id: s for s in self._log().all()}
        folder = self.data_dir / "sessions"
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            if entry.name in known or not _recorder_open(entry):
                continue
            log.warning("recorder files %s belong to no session in the log (a start cut short); closed",
                        entry)
            try:
                self.recorder.close_session(entry.name)
            except LabedgeError as exc:
                log.warning("recorder files %s could not be closed: %s", entry, exc)
        for session in known.values():
            if session.state is SessionState.OPEN:
                meta = {"experiment": session.experiment, "user": session.user,
                        "started_by": session.started_by.value}
                try:
                    self.recorder.open_session(session.id, session.unit, meta)
                except (LabedgeError, OSError) as exc:
                    log.warning("session %s: the recorder could not reopen its files: %s", session.id, exc)

    def _recovered(self, session: Session, message: str) -> None:
        """The RECOVERED event; a disk too full for it does not keep the hub from starting (the session's
        state is already stored; the event is its note), it is said in the hub's log instead."""
        try:
            self._event(session, SessionEventKind.RECOVERED, message)
        except OSError as exc:
            log.error("session %s of %s: the RECOVERED event could not be stored (%s); the session is "
                      "recovered all the same", session.id, session.unit, exc)

    async def __aexit__(self, *exc: object) -> None:
        self._closed = True
        for task in self._finals.values():
            task.cancel()
        await asyncio.gather(*self._finals.values(), return_exceptions=True)
        self._finals.clear()
        self._flush_files()
        if self.log is not None:
            self.log.close()

    def _log(self) -> SessionLog:
        if self.log is None:
            raise LabedgeError("the session log is not open")
        return self.log

    def _now(self) -> str:
        return iso_ts(self.clock.now())

    # ---- what anyone can read -----------------------------------------------------------------
    def current(self, unit: str) -> Session | None:
        """The unit's open session, or None."""
        for session in reversed(self._log().all()):
            if session.unit == unit and session.state is SessionState.OPEN:
                return session
        return None

    def latest(self, unit: str) -> Session | None:
        """The unit's newest session in any state (what `lab/hub/sessions/U` shows)."""
        for session in reversed(self._log().all()):
            if session.unit == unit:
                return session
        return None

    def latest_per_unit(self) -> list[Session]:
        latest: dict[str, Session] = {}
        for session in self._log().all():
            latest[session.unit] = session
        return list(latest.values())

    def units(self) -> set[str]:
        return {s.unit for s in self._log().all()}

    def get(self, session_id: str) -> Session:
        session = self._log().get(session_id)
        if session is None:
            raise SessionUnknown(f"no session {session_id!r} in the session log")
        return session

    def events(self, session_id: str) -> list[dict[str, Any]]:
        self.get(session_id)
        return self._log().events(session_id)

    def files(self, session_id: str) -> list[dict[str, Any]]:
        self.get(session_id)
        return self._log().file_rows(session_id)

    def progress(self, session_id: str) -> UploadProgress:
        session = self.get(session_id)
        if session.state in (SessionState.OPEN, SessionState.CLOSING):
            live = self.uploads.progress(session_id)
            if live != UploadProgress():
                return live
        return self._log().upload(session_id)

    # ---- the rules ----------------------------------------------------------------------------
    async def start(self, unit: str, *, source: SessionSource, user: str | None = None,
                    experiment: str | None = None, pressed_at: str | None = None) -> Session:
        """`pressed_at`: when the unit's button was pressed (its `$button` ts); the session's `started_at`
        when plausible (not in the future, not before the unit's previous session ended), else now."""
        # Checked here too, not only by the MQTT commands: the dashboard calls this directly. A button's
        # unit proves itself (its press may come before its retained $birth after a restart).
        trusted = source in (SessionSource.BUTTON, SessionSource.SCRIPT, SessionSource.HUB)
        known = None if self.known_units is None or trusted else set(self.known_units()) | self.units()
        unit = check_unit(unit, known)
        user = check_text(user, "user", MAX_USER_CHARS)
        experiment = check_text(experiment, "experiment", MAX_EXPERIMENT_CHARS)
        async with self._lock:
            open_one = self.current(unit)
            if open_one is not None:
                raise SessionRefused(
                    f"unit {unit} already has an open session, {open_one.id} (started {open_one.started_at} "
                    f"by {open_one.started_by.value}); stop it first", open_one)
            session_id = str(uuid.uuid4())
            session = Session(id=session_id, unit=unit, experiment=experiment, user=user,
                              started_at=self._started_at(unit, pressed_at), started_by=source,
                              recorded_dir=self.data_dir / "sessions" / session_id)
            meta = {"experiment": experiment, "user": user, "started_by": source.value}
            if self.recorder is not None:
                try:
                    self.recorder.open_session(session_id, unit, meta)
                except (LabedgeError, OSError) as exc:
                    why = f"the recorder could not open the session's files: {exc}"
                    failed = dataclasses.replace(session, state=SessionState.ERROR, ended_at=self._now(),
                                                 reason=why, recorded_dir=None)
                    self._save(failed, SessionEventKind.ERROR, failed.reason or "")
                    log.error("session %s of %s: %s", session_id, unit, failed.reason)
                    return failed
            by = f" by {user}" if user else ""
            data = {"experiment": experiment, "user": user, "source": source.value,
                    **({"pressed_at": pressed_at, "accepted_at": self._now()} if pressed_at else {})}
            try:
                self._save(session, SessionEventKind.START, f"started from the {source.value}{by}", data)
            except BaseException:  # not logged (disk full...): the recorder's files of it are closed again
                self._close_recorded(session)
                raise
            log.info("session %s of %s started (%s)", session_id, unit, source.value)
            self._begin(session)
            return session

    async def stop(self, unit: str, *, source: SessionSource, session_id: str | None = None,
                   user: str | None = None, pressed_at: str | None = None) -> Session:
        """`pressed_at`: as for `start`; the session's `ended_at` when not in the future nor before its start
        (so that a stop and a start pressed while the hub was down keep their order and times)."""
        unit = check_unit(unit, None)
        user = check_text(user, "user", MAX_USER_CHARS)
        async with self._lock:
            open_one = self.current(unit)
            if open_one is None:
                latest = self.latest(unit)
                if latest is not None and latest.state is SessionState.CLOSING and \
                        session_id in (None, latest.id):
                    raise SessionRefused(f"unit {unit} has no open session to stop; its session {latest.id} "
                                         f"was stopped at {latest.ended_at} and its final transfer runs")
                raise SessionRefused(f"unit {unit} has no open session to stop")
            if session_id is not None and session_id != open_one.id:
                raise SessionRefused(f"session {session_id} is not the open session of unit {unit}; the open "
                                     f"one is {open_one.id} (started {open_one.started_at})", open_one)
            closing = dataclasses.replace(open_one, state=SessionState.CLOSING,
                                          ended_at=self._pressed(pressed_at, open_one.started_at, unit)
                                          or _not_before(self._now(), open_one.started_at),
                                          ended_by=source, reason="the final transfer runs")
            by = f" by {user}" if user else ""
            self._save(closing, SessionEventKind.END, f"stopped from the {source.value}{by}",
                       {"source": source.value, "user": user,
                        **({"pressed_at": pressed_at, "accepted_at": self._now()} if pressed_at else {})})
            log.info("session %s of %s stopped (%s); the final transfer runs", closing.id, unit, source.value)
            self._close_recorded(closing)
            self._final(closing)
            return closing

    def _started_at(self, unit: str, pressed_at: str | None) -> str:
        previous = self.latest(unit)
        floor = None if previous is None else previous.ended_at or previous.started_at
        pressed = self._pressed(pressed_at, floor, unit)
        if pressed is not None:
            return pressed
        # A clock set back must not start a session before the unit's previous one ended.
        now = self._now()
        return now if floor is None else _not_before(now, floor)

    def _pressed(self, pressed_at: str | None, floor: str | None, unit: str) -> str | None:
        """A button's own press time when plausible: not in the future, not older than PRESS_MAX_AGE, not
        before `floor` (the unit's previous session's end, or this session's start); else None."""
        if pressed_at is None:
            return None
        now = self.clock.now()
        try:
            pressed = parse_ts(pressed_at)
            if now - PRESS_MAX_AGE <= pressed <= now and (floor is None or parse_ts(floor) <= pressed):
                return iso_ts(pressed)
        except (ValueError, OverflowError, TypeError):
            pass
        log.info("unit %s: press time %r not plausible (in the future, too old, or before %s); the hub's "
                 "time is used", unit, pressed_at, floor)
        return None

    def _begin(self, session: Session) -> None:
        """The session's uploads; one that cannot begin is logged (ERROR), the session stays open."""
        try:
            self.uploads.begin(session)
        except Exception as exc:
            log.exception("session %s: its uploads could not begin", session.id)
            why = f"uploads could not begin: {type(exc).__name__}: {exc}"
            try:  # the session is stored and open: a full disk here must not make its start look failed
                self._event(session, SessionEventKind.ERROR, why)
            except OSError as write_exc:
                log.error("session %s: its ERROR event could not be stored (%s)", session.id, write_exc)

    # ---- the final transfer -------------------------------------------------------------------
    def _close_recorded(self, session: Session) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.close_session(session.id)
        except LabedgeError as exc:  # the files end at the next restart's recovery at worst
            log.warning("session %s: the recorder could not close its files: %s", session.id, exc)

    def _final(self, session: Session) -> None:
        if session.id not in self._finals and not self._closed:
            task = asyncio.get_running_loop().create_task(self._final_transfer(session.id),
                                                          name=f"session-final-{session.id}")
            self._finals[session.id] = task
            task.add_done_callback(lambda t: self._finals.pop(session.id, None))

    async def _final_transfer(self, session_id: str) -> None:
        if self.recorder is not None:
            try:
                await self.recorder.flush()  # the recorder's files are complete before they are compared
            except LabedgeError as exc:
                log.warning("session %s: recorder flush failed: %s", session_id, exc)
        delay, attempts, last_summary = RETRY_FIRST_S, 0, ""
        while True:
            attempts += 1
            try:
                summary = await self._final_attempt(session_id, attempts, delay, last_summary)
            except asyncio.CancelledError:
                raise
            except Exception:  # the log could not be written (disk full...): tried again, never given up
                log.exception("session %s: the final transfer's outcome could not be stored", session_id)
                summary = last_summary
            if summary is None:
                return
            last_summary = summary
            await self.clock.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _final_attempt(self, session_id: str, attempts: int, delay: float, last_summary: str
                             ) -> str | None:
        """One final transfer, its outcome stored: None once verified, else what it misses."""
        session = self.get(session_id)
        try:
            result = await self.uploads.finish(session)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # finish should not raise; if it does, it is retried like a miss
            log.exception("session %s: the final transfer failed", session_id)
            result = FinalTransfer(False, failed=(f"final transfer: {type(exc).__name__}: {exc}",))
        session = self.get(session_id)
        upload = self.uploads.progress(session_id)
        if result.verified:
            note = result.details.get("note") if isinstance(result.details, dict) else None
            message = str(note) if note else result.summary()
            closed = dataclasses.replace(session, state=SessionState.CLOSED, reason=None)
            self._save(closed, SessionEventKind.VERIFIED, message, {"objects": result.objects}, upload)
            log.info("session %s of %s closed: %s", session_id, session.unit, message)
            return None
        summary = result.summary()
        reason = (f"final transfer not verified: {summary} (tried {attempts} time"
                  f"{'s' if attempts > 1 else ''}; again in {delay:g} s)")
        waiting = dataclasses.replace(session, reason=reason)
        if summary == last_summary:  # an ERROR event when what is missing changes, not at every retry
            self._save(waiting, None, "", None, upload)
            return summary
        kinds = (("missing", result.missing), ("differ", result.differ), ("growing", result.growing),
                 ("failed", result.failed))
        listed = {kind: list(paths[:LISTED]) for kind, paths in kinds}
        self._save(waiting, SessionEventKind.ERROR, f"final transfer not verified: {summary}", listed, upload)
        log.warning("session %s of %s: %s", session_id, session.unit, reason)
        return summary

    # ---- from the uploader (never raise; from another thread they hop onto the loop) ---------
    def _elsewhere(self, call: Callable[..., None], *args: Any) -> bool:
        """True when called off the loop's thread: `call` then runs on the loop instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(call, *args)
            else:
                log.warning("an upload report came with the session log closed; dropped")
            return True
        return False

    def upload_progress(self, session_id: str, progress: UploadProgress) -> None:
        if self.log is None or self._elsewhere(self.upload_progress, session_id, progress):
            return
        session = self.log.get(session_id)
        if session is None:
            return
        for listener in list(self.progress_listeners):
            try:
                listener(session, progress)
            except Exception:
                log.exception("a session progress listener failed")

    def upload_file(self, session_id: str, row: dict[str, Any]) -> None:
        """The uploader's per-file row: kept in the session's upload log (gathered, written together)."""
        if self._elsewhere(self.upload_file, session_id, row):
            return
        self._file_rows.append((session_id, dict(row), self._now()))
        if self._file_flush is None or self._retrying:  # new rows at the usual pace, the held ones with them
            if self._file_flush is not None:
                self._file_flush.cancel()
            self._retrying = False
            self._file_flush = asyncio.get_running_loop().call_later(self._file_delay, self._flush_files)

    def _flush_files(self) -> None:
        if self._file_flush is not None:
            self._file_flush.cancel()
            self._file_flush = None
        rows, self._file_rows = self._file_rows, []
        if (rows or (self.log is not None and self.log.unsaved)) and self.log is not None:
            began = time.perf_counter()
            try:
                self.log.record_files(rows)
            except (LabedgeError, OSError):
                log.exception("the upload log could not be written (%d rows); they are kept and written "
                              "again in %g s", len(rows), FILE_LOG_RETRY_S)
            took = time.perf_counter() - began
            self._file_delay = max(FILE_LOG_DELAY_S, took / FILE_LOG_SHARE)
            if self.log.unsaved and not self._closed and self._loop is not None:
                self._retrying = True
                self._file_flush = self._loop.call_later(FILE_LOG_RETRY_S, self._flush_files)

    # ---- storing and telling ------------------------------------------------------------------
    def _save(self, session: Session, kind: SessionEventKind | None, message: str,
              data: dict[str, Any] | None = None, upload: UploadProgress | None = None) -> None:
        self._flush_files()  # file rows before the state change that follows them
        self._log().save(session, kind, message, self._now(), data, upload)
        self._changed(session)

    def _event(self, session: Session, kind: SessionEventKind, message: str) -> None:
        self._log().event(session, kind, message, self._now())
        self._changed(session)

    def _changed(self, session: Session) -> None:
        for listener in list(self.listeners):
            try:
                listener(session)
            except Exception:  # a view must not stop the log
                log.exception("a session listener failed")

    # Last in the class: from here on `list` names this method, not the builtin.
    def list(self, unit: str | None = None, limit: int = 100) -> builtins.list[Session]:
        """Newest first."""
        sessions = [s for s in reversed(self._log().all()) if unit is None or s.unit == unit]
        return sessions[:max(0, limit)]


def _not_before(moment: str, floor: str) -> str:
    """`moment`, or `floor` when the clock went back behind it (both iso_ts strings: they sort as times)."""
    return moment if moment >= floor else floor


def _recorder_open(folder: Path) -> bool:
    """Whether the recorder's files in `folder` are of a session it has not ended (its run.json says)."""
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("ended_at") is None
