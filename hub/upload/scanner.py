"""One pass over a session's folders: size and mtime_ns of each file against what is known, no hashing.

Watched folders are often CIFS/NFS mounts where inotify sees nothing, so the
scan is the truth. It stats every file (os.scandir) but returns only those
whose size or mtime_ns differ from `known` (and every file of a
`checksum_only` folder, which the caller hashes), so what follows a scan
costs in proportion to the changed files. Anything odd (a symlink leading
outside the folder, a folder that cannot be listed, a name the bucket cannot
hold, a socket) is returned as a problem, never raised.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hub.upload.names import matches, name_problem
from hub.upload.settings import RECORDED


@dataclass(frozen=True)
class Root:
    """A folder to scan; `name` (or nothing) prefixes the relative paths of its files."""

    path: Path
    name: str | None = None
    include: tuple[str, ...] = ("*",)
    ignore: tuple[str, ...] = ()
    checksum_only: bool = False
    recorded: bool = False  # the recorder's session folder: chunks go up only once closed


@dataclass(frozen=True)
class Seen:
    rel: str  # the object's path below UNIT/SESSION_ID/
    path: Path
    size: int
    mtime_ns: int
    root: Root


@dataclass(frozen=True)
class Problem:
    rel: str
    why: str


@dataclass
class ScanResult:
    changed: list[Seen] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0  # every included file seen, changed or not


def scan(roots: list[Root], known: Mapping[str, tuple[int, int]]) -> ScanResult:
    """Walk every root; `known` maps a relative path to the (size, mtime_ns) already dealt with."""
    out = ScanResult()
    for root in roots:
        _scan_root(root, known, out)
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _scan_root(root: Root, known: Mapping[str, tuple[int, int]], out: ScanResult) -> None:
    top = root.name or ""
    try:
        real_root = os.path.realpath(root.path)
        if not os.path.isdir(real_root):
            if root.recorded:
                return  # the recorder has written nothing for this session (yet)
            out.problems.append(Problem(top or ".", f"watched folder {root.path} does not exist or is not a "
                                        "folder (an unmounted share?); its files wait"))
            return
    except OSError as e:
        out.problems.append(Problem(top or ".", f"watched folder {root.path}: {e.strerror}"))
        return
    stack: list[tuple[str, str]] = [(str(root.path), "")]
    while stack:
        folder, inner = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            out.problems.append(Problem(_join(top, inner) or ".", f"folder cannot be listed ({e.strerror})"))
            continue
        for entry in entries:
            _entry(root, top, real_root, inner, entry, known, out, stack)


def _entry(root: Root, top: str, real_root: str, inner: str, entry: os.DirEntry[str],
           known: Mapping[str, tuple[int, int]], out: ScanResult, stack: list[tuple[str, str]]) -> None:
    name = entry.name
    rel_inner = _join(inner, name)
    rel = _join(top, rel_inner)
    if root.recorded and name.endswith(".tmp"):
        return  # the recorder's atomic rewrites in progress
    if not top and not inner and name == RECORDED and not root.recorded:
        out.problems.append(Problem(rel, f"{RECORDED}/ is where the recorder's files go in the bucket; give "
                                    "this watch entry a name: to upload it"))
        return
    try:
        is_link = entry.is_symlink()
        if is_link:
            target = os.path.realpath(entry.path)
            if os.path.commonpath([real_root, target]) != real_root:
                if not matches(root.ignore, rel_inner, name):
                    why = f"symlink leads outside the watched folder (to {target}); not uploaded"
                    out.problems.append(Problem(rel, why))
                return
        is_dir = entry.is_dir()  # follows a symlink that stays inside
    except (OSError, ValueError) as e:
        out.problems.append(Problem(rel, f"cannot be examined ({getattr(e, 'strerror', None) or e})"))
        return
    if is_dir:
        if is_link:
            return  # a link to a folder inside is walked through its real place, not twice
        if not matches(root.ignore, rel_inner, name):
            stack.append((entry.path, rel_inner))
        return
    if not matches(root.include, rel_inner, name) or matches(root.ignore, rel_inner, name):
        return
    bad_name = name_problem(rel)
    if bad_name:
        out.problems.append(Problem(rel.encode("utf-8", "replace").decode("utf-8"), bad_name))
        return
    try:
        info = entry.stat()
    except OSError as e:
        out.problems.append(Problem(rel, f"cannot be examined ({e.strerror}); vanished or not readable"))
        return
    if not stat.S_ISREG(info.st_mode):
        out.problems.append(Problem(rel, "not a regular file (a socket, pipe or device); not uploaded"))
        return
    out.files += 1
    sig = (info.st_size, info.st_mtime_ns)
    if root.checksum_only or known.get(rel) != sig:
        out.changed.append(Seen(rel, Path(entry.path), sig[0], sig[1], root))
