"""A hub.yaml with storage/upload/watch for the uploader's tests, and what the bucket holds."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

from hub.config import HubConfig, load_hub_config
from hub.sessions.model import Session, SessionSource, UploadProgress
from hub.upload.transfer import Bucket, StoredObject
from lecis.clock import Clock, iso_ts
from tests.hub.upload.emulators import BUCKET, Emulator

UNIT = "bench-1"


FAST = "{scan_s: 1, stable_s: 0.5, final_timeout_s: 5, timeout_s: 2}"


def hub_config(tmp: Path, watch: Path, *, upload: str = FAST,
               extra_watch: str = "") -> HubConfig:
    text = (f"hub: hub-1\nbroker: {{}}\ndata_dir: {tmp / 'hubdata'}\n"
            f"storage: {{bucket: {BUCKET}, prefix: lab1}}\nupload: {upload}\n"
            f"watch:\n  {UNIT}:\n    - {{path: {watch}, include: ['*.csv', '*.txt', '*.bin'], "
            f"ignore: ['*.tmp', '~*']{extra_watch}}}\n")
    path = tmp / "hub.yaml"
    path.write_text(text)
    return load_hub_config(path)


def new_session(clock: Clock, recorded: Path | None = None) -> Session:
    return Session(str(uuid.uuid4()), UNIT, "exp", "ann", iso_ts(clock.now()), SessionSource.CLI,
                   recorded_dir=recorded)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def bucket_of(config: HubConfig, emu: Emulator) -> Bucket:
    assert config.storage is not None
    return Bucket(config.storage, config.upload, {"STORAGE_EMULATOR_HOST": emu.url})


def objects(config: HubConfig, emu: Emulator, session: Session) -> dict[str, StoredObject]:
    """The session's objects by relative path."""
    prefix = f"lab1/{session.unit}/{session.id}/"
    return {k[len(prefix):]: v for k, v in bucket_of(config, emu).list(prefix).items()}


class Calls:
    """on_progress / on_file, remembered."""

    def __init__(self) -> None:
        self.progress: list[UploadProgress] = []
        self.files: list[dict[str, Any]] = []

    def on_progress(self, sid: str, p: UploadProgress) -> None:
        self.progress.append(p)

    def on_file(self, sid: str, row: dict[str, Any]) -> None:
        self.files.append(row)

    def status(self, status: str) -> list[str]:
        return [r["path"] for r in self.files if r["status"] == status]


def aged(*paths: Path, hours: float = 1.0) -> None:
    """Files written well before the session started (its baseline), as an earlier run's output would be."""
    when = time.time() - 3600 * hours
    for path in paths:
        os.utime(path, (when, when))
