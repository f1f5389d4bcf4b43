"""A session as values, shared by the session log, the uploader and the dashboard.

The session log (`hub/sessions/`) owns the lifecycle: `open` when a start is
accepted, `closing` while the final transfer runs, then `closed` once every
file is verified in the bucket, or `error` with a reason. The uploader
(`hub/upload/`) implements `SessionUploads`; the log calls it and never
touches the bucket itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from lecis.errors import CommandRejected, ErrorKind


class SessionState(str, Enum):
    OPEN = "open"
    CLOSING = "closing"  # the final transfer runs (or retries)
    CLOSED = "closed"  # every file verified in the bucket
    ERROR = "error"


class SessionSource(str, Enum):
    """Who started or ended a session."""

    BUTTON = "button"
    CLI = "cli"
    API = "api"
    SCRIPT = "script"
    HUB = "hub"  # the hub itself (a recovery after restart)


class SessionEventKind(str, Enum):
    START = "START"
    END = "END"
    UPLOADED = "UPLOADED"
    VERIFIED = "VERIFIED"
    RECOVERED = "RECOVERED"
    ERROR = "ERROR"


@dataclass(frozen=True)
class UploadProgress:
    """What the uploader has done for one session; `to_json` is the `upload` of `lab/hub/sessions/U`."""

    files_pending: int = 0
    files_done: int = 0
    bytes_pending: int = 0
    bytes_done: int = 0
    rate_bps: float = 0.0
    errors: int = 0  # files with a per-file error (deleted, unreadable, outside the folder...)
    last_scan_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"files_pending": self.files_pending, "files_done": self.files_done,
                "bytes_pending": self.bytes_pending, "bytes_done": self.bytes_done,
                "rate_bps": round(self.rate_bps, 1), "errors": self.errors, "last_scan_at": self.last_scan_at}


@dataclass(frozen=True)
class Session:
    id: str  # a UUID4, made when the start is accepted
    unit: str
    experiment: str | None
    user: str | None
    started_at: str  # ISO 8601 UTC with offset, lecis.clock.iso_ts
    started_by: SessionSource
    state: SessionState = SessionState.OPEN
    ended_at: str | None = None
    ended_by: SessionSource | None = None
    reason: str | None = None  # why `error`, or what the final transfer still misses while `closing`
    recorded_dir: Path | None = None  # the recorder's files of this session (uploaded under recorded/)

    def to_json(self, upload: UploadProgress | None = None) -> dict[str, Any]:
        """The retained `lab/hub/sessions/U` payload (CONTRACT.md) and the API's shape."""
        return {"id": self.id, "unit": self.unit, "state": self.state.value, "experiment": self.experiment,
                "user": self.user, "started_at": self.started_at, "started_by": self.started_by.value,
                "ended_at": self.ended_at, "ended_by": self.ended_by.value if self.ended_by else None,
                "reason": self.reason, "upload": (upload or UploadProgress()).to_json()}


@dataclass(frozen=True)
class FinalTransfer:
    """The outcome of one final transfer: verified only when nothing is missing, differs or still grows."""

    verified: bool
    objects: int = 0  # objects listed under the session's prefix
    missing: tuple[str, ...] = ()  # relative paths not in the bucket
    differ: tuple[str, ...] = ()  # in the bucket with another MD5
    growing: tuple[str, ...] = ()  # still changing when the stable wait ran out
    failed: tuple[str, ...] = ()  # per-file errors, "path: why"
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        if self.verified:
            return f"{self.objects} objects verified"
        parts = [f"{len(v)} {k}: {', '.join(v[:5])}{' ...' if len(v) > 5 else ''}"
                 for k, v in (("missing", self.missing), ("differ", self.differ),
                              ("still growing", self.growing), ("failed", self.failed)) if v]
        return "; ".join(parts) or "not verified"


class SessionUploads(Protocol):
    """What the session log needs from the uploader (hub/upload implements it)."""

    def begin(self, session: Session) -> None:
        """Scan and upload this open session's files every `scan_s` (a recovered session too)."""

    async def finish(self, session: Session) -> FinalTransfer:
        """Stop the periodic scan, run a final scan and upload, list the bucket and compare MD5s.

        Never raises for the bucket being away: returns `verified=False` saying what is missing;
        the session log calls it again with backoff until it is verified.
        """

    def progress(self, session_id: str) -> UploadProgress:
        """The latest figures (cheap; no I/O)."""


class SessionRefused(CommandRejected):
    """A start while one is open, or a stop with none open / for another id: a `rejected` reply."""

    def __init__(self, message: str, open_session: Session | None = None) -> None:
        super().__init__(ErrorKind.STATE, message)
        self.open_session = open_session
