"""What every session's uploads share: the outage gate, the context handed to each job, a pending file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.sessions.model import Session
from hub.upload.manifest import Manifest
from hub.upload.scanner import Root, Seen
from hub.upload.settings import RECORDED, UploadConfig, WatchEntry
from hub.upload.transfer import Bucket
from lecis.clock import Clock

Run = Callable[..., Awaitable[Any]]


class Gate:
    """Shared by every session: after a transient error nothing is sent until the backoff has passed."""

    def __init__(self, clock: Clock, max_s: float) -> None:
        self.clock, self.max_s = clock, max_s
        self.until = 0.0
        self.delay = 0.0
        self.last_error: str | None = None

    def open(self) -> bool:
        return self.clock.monotonic() >= self.until

    def failed(self, why: str) -> None:
        self.delay = min(self.max_s, max(1.0, self.delay * 2))
        self.until = self.clock.monotonic() + self.delay
        self.last_error = why

    def succeeded(self) -> None:
        self.delay, self.until, self.last_error = 0.0, 0.0, None


@dataclass
class Context:
    upload: UploadConfig
    prefix: str
    manifest: Manifest
    bucket: Bucket
    clock: Clock
    run: Run  # a blocking call in the uploader's threads
    gate: Gate
    slots: asyncio.Semaphore
    on_file: Callable[[str, dict[str, Any]], None]
    changed: Callable[[str], None]  # progress moved for this session


@dataclass
class Pending:
    seen: Seen
    since: float  # monotonic time its signature last changed
    md5: str | None = None  # checksum_only folders: the MD5 at `since`
    refusals: int = 0
    not_before: float = 0.0


def roots_for(session: Session, watch: tuple[WatchEntry, ...]) -> list[Root]:
    roots = [Root(e.path, e.name, e.include, e.ignore, e.checksum_only) for e in watch]
    if session.recorded_dir is not None:
        roots.append(Root(Path(session.recorded_dir), RECORDED, recorded=True))
    return roots
