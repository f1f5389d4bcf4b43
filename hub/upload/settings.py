"""hub.yaml's `storage:`, `upload:` and `watch:` keys, read strictly (file:line and field per problem)."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lecis.topics import UNIT_ID
from lecis.yaml_loader import MISSING, Fields

STORAGE_KEYS = ("bucket", "prefix", "credentials", "project")
UPLOAD_KEYS = ("scan_s", "stable_s", "final_timeout_s", "workers", "chunk_kib", "timeout_s", "retry_max_s")
WATCH_KEYS = ("path", "include", "ignore", "checksum_only", "name")
# GCS bucket names: 3-63 characters of lower-case letters, digits, -, _ and . (dotted names up to 222)
BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
PREFIX = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
RECORDED = "recorded"  # the recorder's own files of a session go under UNIT/SESSION_ID/recorded/


@dataclass(frozen=True)
class StorageConfig:
    bucket: str
    prefix: str = ""  # objects at gs://BUCKET/PREFIX/UNIT/SESSION_ID/RELATIVE_PATH
    credentials: Path | None = None  # a service-account key file; None: application default credentials
    project: str | None = None


@dataclass(frozen=True)
class UploadConfig:
    scan_s: float = 10.0  # a scan of every open session's folders this often
    stable_s: float = 5.0  # a changed file goes up once its size and mtime held this long
    final_timeout_s: float = 60.0  # at the close, a still-growing file is waited for this long, then reported
    workers: int = 4  # uploads at the same time (threads for the blocking client)
    chunk_kib: int = 8192  # files above this go up resumably, in chunks of this size (a multiple of 256)
    timeout_s: float = 60.0  # one HTTP request to the bucket
    retry_max_s: float = 300.0  # the longest wait between two tries of a file after transient errors


@dataclass(frozen=True)
class WatchEntry:
    """One watched folder of a unit; `name` prefixes its objects when the unit watches several."""

    path: Path
    include: tuple[str, ...] = ("*",)
    ignore: tuple[str, ...] = ()
    checksum_only: bool = False  # hash every file each scan: the instrument rewrites without new size/mtime
    name: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class UploadSettings:
    storage: StorageConfig | None = None
    upload: UploadConfig = UploadConfig()
    watch: dict[str, tuple[WatchEntry, ...]] = field(default_factory=dict)


def key_file_problem(path: Path) -> str | None:
    """Why a service-account key file cannot be used (missing, group- or world-readable), or None."""
    try:
        info = path.stat()
    except OSError as e:
        return f"credentials file {path} cannot be read ({e.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return f"credentials {path} is not a file"
    if info.st_mode & 0o077:
        return (f"credentials file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"a service-account key must be private: chmod 600 {path}")
    return None


def read_upload_settings(f: Fields, base: Path, check_files: bool) -> UploadSettings:
    """Read the three keys; problems go to `f`, the returned values are usable defaults meanwhile."""
    return UploadSettings(_storage(f, base, check_files), _upload(f), _watch(f, base))


def _absolute(base: Path, text: str) -> Path:
    return Path(os.path.abspath(base / Path(text).expanduser()))


def _storage(f: Fields, base: Path, check_files: bool) -> StorageConfig | None:
    if f.mapping(("storage",), STORAGE_KEYS, what="a mapping with bucket:, prefix: and credentials:") is None:
        return None
    bucket = f.string(("storage", "bucket"), None, required=True, pattern=BUCKET,
                      expected="a bucket name (lower-case letters, digits, -, _ and ., e.g. labedge-data)")
    prefix = f.string(("storage", "prefix"), "", nullable=True, pattern=PREFIX,
                      expected="an object prefix (letters, digits, ., _ and -, parts joined by /, e.g. lab1)")
    project = f.string(("storage", "project"), None, nullable=True, expected="a Google Cloud project id")
    creds_text = f.string(("storage", "credentials"), None, nullable=True,
                          expected="the path of a service-account key file (JSON)")
    creds = _absolute(base, creds_text) if creds_text is not None else None
    if creds is not None and check_files:
        why = key_file_problem(creds)
        if why:
            f.problem(("storage", "credentials"), why)
    return StorageConfig(bucket or "invalid", prefix or "", creds, project) if bucket else None


def _upload(f: Fields) -> UploadConfig:
    if f.mapping(("upload",), UPLOAD_KEYS) is None:
        return UploadConfig()
    u = ("upload",)
    chunk = f.integer(u + ("chunk_kib",), 8192, minimum=256, maximum=1024 * 1024)
    if chunk % 256:
        f.problem(u + ("chunk_kib",), f"expected a multiple of 256 (the bucket's chunk unit), got {chunk}")
        chunk = 8192
    return UploadConfig(
        scan_s=f.number(u + ("scan_s",), 10.0, minimum=0.1, maximum=86400),
        stable_s=f.number(u + ("stable_s",), 5.0, minimum=0, maximum=86400),
        final_timeout_s=f.number(u + ("final_timeout_s",), 60.0, minimum=0, maximum=86400),
        workers=f.integer(u + ("workers",), 4, minimum=1, maximum=32),
        chunk_kib=chunk,
        timeout_s=f.number(u + ("timeout_s",), 60.0, above=0, maximum=3600),
        retry_max_s=f.number(u + ("retry_max_s",), 300.0, minimum=1, maximum=86400),
    )


def _patterns(f: Fields, path: tuple[Any, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    value = f.value(path)
    if value is None or value is MISSING:
        return default
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        f.problem(path, "expected a list of file name patterns such as [\"*.csv\", \"*.txt\"]")
        return default
    if not value and path[-1] == "include":
        f.problem(path, "an empty include list would upload nothing; leave it out to take every file")
        return default
    return tuple(value)


def _watch(f: Fields, base: Path) -> dict[str, tuple[WatchEntry, ...]]:
    units = f.mapping(("watch",), None, what="a mapping of unit id to a list of folders")
    out: dict[str, tuple[WatchEntry, ...]] = {}
    for unit, entries in (units or {}).items():
        where: tuple[Any, ...] = ("watch", unit)
        if not isinstance(unit, str) or not UNIT_ID.match(unit) or unit == "hub":
            f.problem(where, f"expected a unit id (lower-case letters, digits and -), got {unit!r}")
            continue
        if isinstance(entries, dict):
            entries = [entries]
            single = True
        else:
            single = False
        if not isinstance(entries, list):
            f.problem(where, "expected a list of folders: - {path: /srv/out, include: [\"*.csv\"]}")
            continue
        read: list[WatchEntry] = []
        for i, _ in enumerate(entries):
            at = where if single else where + (i,)
            what = "a mapping with path:, include:, ignore:"
            if f.mapping(at, WATCH_KEYS, required=True, what=what) is None:
                continue
            text = f.string(at + ("path",), None, required=True, expected="the folder to upload from")
            name = f.string(at + ("name",), None, nullable=True, pattern=NAME,
                            expected="a short name for this folder's objects (letters, digits, ., _, -)")
            if name == RECORDED:
                f.problem(at + ("name",), f"{RECORDED!r} is where the recorder's files go; choose another")
            include, ignore = _patterns(f, at + ("include",), ("*",)), _patterns(f, at + ("ignore",), ())
            checksum_only = f.boolean(at + ("checksum_only",), False)
            if text is not None:
                read.append(WatchEntry(_absolute(base, text), include, ignore, checksum_only, name,
                                       f.doc.line_of(at)))
        if len(read) > 1:
            names = [e.name for e in read]
            if None in names or len(set(names)) != len(names):
                f.problem(where, f"{unit} watches {len(read)} folders: give each a distinct name: (its "
                          "objects go under UNIT/SESSION_ID/NAME/...) so that no file overwrites another")
        out[unit] = tuple(read)
    return out
