"""Which of the recorder's session files may go up now (docs/recorder.md: "Chunks: what an uploader may ...").

A chunk (`ph1.2026-12-01T13.csv`, `..._02.csv`) goes up only once closed: a
later part or hour of the same stream exists, the clock is past the end of
its hour, or `run.json` has `ended_at`. The open chunk only grows, so it is
never sent (and never sent whole again later): it goes up once it closes.
Other files (`run.json`, `schema.json`, `versions/*`) are rewritten whole and
go up like any changed file.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.recorder.chunks import CHUNK_NAME

GRACE = timedelta(seconds=2)  # the recorder's last batch of an hour, written just after the hour turned


def session_ended(folder: Path) -> bool:
    """True once the recorder wrote `ended_at` into the session's run.json."""
    try:
        with open(folder / "run.json", encoding="utf-8") as fh:
            return bool(json.load(fh).get("ended_at"))
    except (OSError, ValueError, AttributeError):
        return False


def chunk_closed(path: Path, now: datetime, ended: bool) -> bool | None:
    """None when `path` is not a chunk; else whether the recorder will never write to it again."""
    m = CHUNK_NAME.match(path.name)
    if not m:
        return None
    if ended:
        return True
    hour = datetime.strptime(m["hour"], "%Y-%m-%dT%H").replace(tzinfo=UTC)
    if now >= hour + timedelta(hours=1) + GRACE:
        return True
    mine = (m["hour"], int(m["part"] or 1))
    try:
        names = os.listdir(path.parent)
    except OSError:
        return False
    for other in names:
        o = CHUNK_NAME.match(other)
        if o and o["name"] == m["name"] and o["ext"] == m["ext"] and (o["hour"], int(o["part"] or 1)) > mine:
            return True
    return False
