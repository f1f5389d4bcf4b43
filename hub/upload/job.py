"""One open session's uploads: scan, wait for stable files, send them, record each one as it lands.

A file is `pending` from the scan that finds it changed until it has kept its
size and mtime for `stable_s` (for a `checksum_only` folder: its MD5); then it
is hashed and, when the MD5 differs from what the bucket got last, sent.
Every state change is stored in the manifest at once. One file's error is
that file's: it is reported through `on_file` once and the others go on. A
bucket that does not answer closes the shared `Gate` for a while (backoff);
the files stay pending meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from hub.sessions.model import Session
from hub.upload.hashing import md5_file
from hub.upload.manifest import FileState
from hub.upload.names import MAX_NAME_BYTES, object_name
from hub.upload.recorded import chunk_closed, session_ended
from hub.upload.scanner import Problem, Root, Seen, scan
from hub.upload.shared import Context, Pending
from hub.upload.transfer import (
    BucketUnreachable,
    ChecksumMismatch,
    CredentialsRefused,
    ObjectConflict,
    StoredObject,
    UploadFailed,
)
from lecis.clock import iso_ts

log = logging.getLogger(__name__)
RATE_WINDOW_S = 30.0
BASELINE_MARGIN_NS = 2_000_000_000  # started_at has milliseconds; a share's clock may lag a little
REFUSALS_BEFORE_ERROR = 3  # a file the bucket refuses this often (not an outage) is reported and left


class SessionJob:
    def __init__(self, session: Session, roots: list[Root], ctx: Context) -> None:
        self.session, self.roots, self.ctx = session, roots, ctx
        self.sid = session.id
        self.files: dict[str, FileState] = {}
        self.pending: dict[str, Pending] = {}
        self.done: set[str] = set()  # uploaded in this session and unchanged since
        self.failed: set[str] = set()  # gone or refused for good
        self.reported: dict[str, str] = {}  # rel -> the problem already told
        self.problems: dict[str, str] = {}
        self.bytes_done = 0
        self.recent: collections.deque[tuple[float, int]] = collections.deque()  # (landed at, bytes)
        self.last_scan_at: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.started = False
        self.giving_up: set[asyncio.Future[None]] = set()
        self.sending: dict[str, asyncio.Task[None]] = {}
        self.stopping = False  # finish() asked the loop to end after what it is sending
        self.sleeping = False

    # -- setup -----------------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """First time: note what the folders hold already (the baseline); after a restart: reload it."""
        if self.started:
            return
        m = self.ctx.manifest
        if not await self.ctx.run(m.session_known, self.sid):
            watched = [r for r in self.roots if not r.recorded]
            result = await self.ctx.run(scan, watched, {})
            # A file written since the session started is the session's even if this first scan (slow on a
            # large share) sees it: only older files are the baseline.
            cutoff = _started_ns(self.session.started_at) - BASELINE_MARGIN_NS
            base = [(s.rel, str(s.path), s.size, s.mtime_ns) for s in result.changed if s.mtime_ns < cutoff]
            await self.ctx.run(m.add_session, self.sid, self.session.unit, base)
        for f in (await self.ctx.run(m.files, self.sid)).values():
            self._track(f)
        now = self.ctx.clock.monotonic()
        for rel, f in self.files.items():
            if f.state in ("pending", "uploading"):  # an upload cut by a crash is sent again, whole
                root = self._root_of(rel)
                if root is not None:
                    self.pending[rel] = Pending(Seen(rel, Path(f.path), f.size, f.mtime_ns, root), now)
        self.started = True

    def _root_of(self, rel: str) -> Root | None:
        for r in self.roots:
            if r.name is None or rel.startswith(r.name + "/"):
                return r
        return None

    # -- the periodic loop -----------------------------------------------------------------------------

    async def periodic(self) -> None:
        await self.prepare()
        next_scan = self.ctx.clock.monotonic()
        while not self.stopping:
            now = self.ctx.clock.monotonic()
            try:
                if now >= next_scan:
                    await self.scan_once(final=False)
                    next_scan = self.ctx.clock.monotonic() + self.ctx.upload.scan_s
                else:
                    await self.recheck_pending()
                self.send_ready()
            except asyncio.CancelledError:
                raise
            except Exception:  # a loop that serves a session goes on; the next scan tries again
                log.exception("uploads of session %s: scan failed", self.sid)
            wake = min(next_scan, self._next_due())
            if not self.ctx.gate.open():
                wake = max(wake, min(next_scan, self.ctx.gate.until))
            self.sleeping = True
            try:
                await self.ctx.clock.sleep(max(0.05, wake - self.ctx.clock.monotonic()))
            finally:
                self.sleeping = False

    def rate_bps(self) -> float:
        """Bytes per second landed over the last RATE_WINDOW_S of the clock (0 when idle that long)."""
        now = self.ctx.clock.monotonic()
        while self.recent and self.recent[0][0] < now - RATE_WINDOW_S:
            self.recent.popleft()
        if not self.recent:
            return 0.0
        return sum(n for _, n in self.recent) / max(1.0, min(RATE_WINDOW_S, now - self.recent[0][0]))

    def known(self) -> dict[str, tuple[int, int]]:
        settled = ("baseline", "done", "gone", "error")
        return {rel: f.sig for rel, f in self.files.items() if f.state in settled}

    async def scan_once(self, final: bool) -> None:
        result = await self.ctx.run(scan, self.roots, self.known())
        self.last_scan_at = iso_ts(self.ctx.clock.now())
        for p in result.problems:
            self._problem(p)
        self.problems = {p.rel: p.why for p in result.problems}  # what the latest scan found odd
        ended = final or any(r.recorded and session_ended(r.path) for r in self.roots)
        now_wall = self.ctx.clock.now()
        seen_now: set[str] = set()
        batch: list[FileState] = []
        for s in result.changed:
            if s.root.recorded and not ended and chunk_closed(s.path, now_wall, False) is False:
                continue  # the open chunk only grows: it goes up once closed, never in pieces
            seen_now.add(s.rel)
            await self._note(s, batch)
        if batch:
            await self.ctx.run(self.ctx.manifest.put_many, self.sid, batch)
        await self._vanished(seen_now, result.problems)
        self.ctx.changed(self.sid)

    def _next_due(self) -> float:
        """When a waiting file (not being sent) is next due: stable, or past its retry delay."""
        due = [max(p.since + self.ctx.upload.stable_s, p.not_before) for p in self.pending.values()
               if p.seen.rel not in self.sending]
        return min(due, default=float("inf"))

    async def recheck_pending(self) -> None:
        """Between scans, only the waiting files are looked at again (stat, no listing)."""
        for p in [p for p in self.pending.values() if p.seen.rel not in self.sending]:
            try:
                info = await self.ctx.run(os.stat, p.seen.path)
            except OSError:
                continue  # the next scan decides whether it is gone
            await self._note(replace(p.seen, size=info.st_size, mtime_ns=info.st_mtime_ns))

    async def _note(self, s: Seen, batch: list[FileState] | None = None) -> None:
        """Take a changed file into `pending`; its row goes into `batch` when given (one commit per scan)."""
        full = len(object_name(self.ctx.prefix, self.session.unit, self.sid, s.rel).encode("utf-8"))
        if full > MAX_NAME_BYTES:
            self._problem(Problem(s.rel, f"its object name would be {full} bytes, above the bucket's "
                                  f"{MAX_NAME_BYTES}; shorten the path"))
            return
        now = self.ctx.clock.monotonic()
        p = self.pending.get(s.rel)
        md5 = None
        if s.root.checksum_only:
            try:
                md5 = (await self.ctx.run(md5_file, s.path))[0]
            except OSError as e:
                self._problem(Problem(s.rel, f"cannot be read ({e.strerror})"))
                return
            prev = self.files.get(s.rel)
            if p is None and prev is not None and prev.md5 == md5 and prev.state in ("done", "baseline"):
                return
            if p is None and prev is not None and prev.state == "baseline" and prev.md5 is None:
                # first look at a checksum_only baseline file: remember its MD5, nothing to send
                await self._store(replace(prev, md5=md5, size=s.size, mtime_ns=s.mtime_ns))
                return
        if p is not None:
            if (p.seen.size, p.seen.mtime_ns, p.md5) != (s.size, s.mtime_ns, md5):
                p.seen, p.since, p.md5 = s, now, md5
            return
        self.pending[s.rel] = Pending(s, now, md5)
        prev = self.files.get(s.rel)
        row = FileState(s.rel, str(s.path), s.size, s.mtime_ns, "pending", prev.md5 if prev else None,
                        prev.generation if prev else None, prev.uploaded_at if prev else None, None,
                        prev.uploads if prev else 0)
        if batch is None:
            await self._store(row)
        else:
            self._track(row)
            batch.append(row)

    async def _vanished(self, seen_now: set[str], problems: list[Problem]) -> None:
        unlisted = {p.rel.split("/")[0] for p in problems if "folder" in p.why}
        for rel, p in list(self.pending.items()):
            if rel in seen_now:
                continue
            if os.path.lexists(p.seen.path) or (rel.split("/")[0] in unlisted or "." in unlisted):
                continue
            del self.pending[rel]
            why = "deleted or renamed before it could be uploaded"
            prev = self.files.get(rel)
            s = p.seen
            await self._store(replace(prev, state="gone", error=why) if prev else
                              FileState(rel, str(s.path), s.size, s.mtime_ns, "gone", error=why))
            self.ctx.on_file(self.sid, {"path": rel, "status": "gone", "error": why})

    def _problem(self, p: Problem) -> None:
        if self.reported.get(p.rel) == p.why:
            return
        self.reported[p.rel] = p.why
        self.ctx.on_file(self.sid, {"path": p.rel, "status": "skipped", "error": p.why})

    def _track(self, f: FileState) -> None:
        """Keep `files` and the counts progress() reads (so it never walks a large baseline)."""
        self.files[f.rel] = f
        (self.done.add if f.state == "done" and f.uploads > 0 else self.done.discard)(f.rel)
        (self.failed.add if f.state in ("gone", "error") else self.failed.discard)(f.rel)

    async def _store(self, f: FileState) -> None:
        self._track(f)
        await self.ctx.run(self.ctx.manifest.put, self.sid, f)

    # -- sending ---------------------------------------------------------------------------------------

    def ready(self) -> list[Pending]:
        now = self.ctx.clock.monotonic()
        return [p for p in self.pending.values() if p.seen.rel not in self.sending
                and now - p.since >= self.ctx.upload.stable_s and now >= p.not_before]

    def send_ready(self) -> None:
        """Start sending every ready file (at most `workers` at once); scans go on meanwhile."""
        if not self.ctx.gate.open():
            return
        for p in self.ready():
            task = asyncio.get_running_loop().create_task(self._send_one(p), name=f"upload {p.seen.rel}")
            self.sending[p.seen.rel] = task
            task.add_done_callback(functools.partial(self._sent, p.seen.rel))

    def _sent(self, rel: str, task: asyncio.Task[None]) -> None:
        if self.sending.get(rel) is task:
            del self.sending[rel]
        if not task.cancelled():
            self.ctx.changed(self.sid)

    async def drain(self) -> None:
        """Wait for the files being sent."""
        while self.sending:
            await asyncio.wait(list(self.sending.values()))

    def cancel_sends(self) -> None:
        for task in self.sending.values():
            task.cancel()

    async def _send_one(self, p: Pending) -> None:
        async with self.ctx.slots:
            if not self.ctx.gate.open() or self.pending.get(p.seen.rel) is not p:
                return
            try:
                await self._send(p)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one file's trouble never stops the others
                log.exception("uploads of session %s: %s", self.sid, p.seen.rel)
                self._refused(p, f"{type(e).__name__}: {e}")

    async def _send(self, p: Pending) -> None:
        s, rel = p.seen, p.seen.rel
        try:
            md5, size, after = await self.ctx.run(_hash_then_stat, s.path, s.size)
        except FileNotFoundError:
            return  # the next scan records it as gone
        except OSError as e:
            await self._give_up(p, f"cannot be read ({e.strerror}); fix its permissions: it is tried again "
                                "when it changes and at the session's close")
            return
        if (after.st_size, after.st_mtime_ns) != (s.size, s.mtime_ns) or size != s.size:
            p.seen = replace(s, size=after.st_size, mtime_ns=after.st_mtime_ns)
            p.since = self.ctx.clock.monotonic()
            return  # still changing
        prev = self.files.get(rel)
        if prev is not None and prev.md5 == md5 and prev.state in ("done", "pending") and prev.generation:
            await self._landed(p, s, md5, StoredObject("", prev.generation, md5, {}), upload=False,
                               report=False)
            return  # touched, not changed: nothing to send
        if prev is None or prev.state != "uploading":  # md5 and generation stay what the bucket holds
            await self._store(FileState(rel, str(s.path), s.size, s.mtime_ns, "uploading",
                                        prev.md5 if prev else None,
                                        prev.generation if prev else None, prev.uploaded_at if prev else None,
                                        None, prev.uploads if prev else 0))
        name = object_name(self.ctx.prefix, self.session.unit, self.sid, rel)
        meta = {"md5": md5, "mtime_ns": str(s.mtime_ns), "session": self.sid, "unit": self.session.unit,
                "path": rel}
        expected = (prev.generation if prev and prev.generation else 0)
        try:
            stored, sent = await self._put(s.path, name, md5, size, meta, expected)
        except BucketUnreachable as e:
            self.ctx.gate.failed(str(e))
            return
        except ChecksumMismatch as e:
            got = getattr(e, "stored", None)
            if got is not None:  # it landed with other bytes: the next try must name that generation
                await self._store(replace(self.files[rel], generation=got.generation, md5=got.md5,
                                                 state="pending"))
            p.since = self.ctx.clock.monotonic()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            await self._give_up(p, f"cannot be read ({e.strerror})")
            return
        except ObjectConflict as e:
            await self._give_up(p, f"{e}; it was written by someone else, so it is not overwritten")
            return
        except CredentialsRefused as e:  # no file can go up: everything waits, as when offline
            self.ctx.gate.failed(str(e))
            return
        except UploadFailed as e:
            self._refused(p, str(e))
            return
        self.ctx.gate.succeeded()
        await self._landed(p, s, md5, stored, upload=sent, report=True)

    async def _put(self, path: Path, name: str, md5: str, size: int, meta: dict[str, str],
                   expected: int) -> tuple[StoredObject, bool]:
        """Upload; on a generation conflict look at the object: ours already (a try that landed) or newer.

        Returns the object and whether this call sent it (False: an earlier try had landed it).
        """
        up = self.ctx.bucket.upload
        try:
            return await self.ctx.run(up, path, name, md5, size, meta, expected), True
        except ObjectConflict:
            there = await self.ctx.run(self.ctx.bucket.get, name)
            if there is None:
                raise
            if there.md5 == md5:  # an earlier try landed (before a crash, or its answer was lost)
                return there, False
            if there.metadata.get("session") == self.sid and there.metadata.get("unit") == self.session.unit:
                # an earlier try of this session landed an older version: ours is newer, replace exactly that
                return await self.ctx.run(up, path, name, md5, size, meta, there.generation), True
            raise

    async def _landed(self, p: Pending, s: Seen, md5: str, stored: StoredObject, upload: bool,
                      report: bool) -> None:
        """`s` is the file as it was hashed and sent; if a scan saw it change since, it stays pending.

        `upload`: this hub sent it now (counted); `report`: it is new in the bucket (an on_file row).
        """
        rel = s.rel
        prev = self.files.get(rel)
        uploads = (prev.uploads if prev else 0) + (1 if upload else 0)
        at = iso_ts(self.ctx.clock.now()) if report else (prev.uploaded_at if prev else None)
        await self._store(FileState(rel, str(s.path), s.size, s.mtime_ns, "done", md5, stored.generation, at,
                                    None, uploads))
        if self.pending.get(rel) is p and p.seen == s:
            del self.pending[rel]
        self.reported.pop(rel, None)
        if upload:
            self.bytes_done += s.size
            self.recent.append((self.ctx.clock.monotonic(), s.size))
        if report:
            name = object_name(self.ctx.prefix, self.session.unit, self.sid, rel)
            row = {"path": rel, "status": "uploaded", "size": s.size, "md5": md5,
                   "generation": stored.generation, "uploaded_at": at, "object": name}
            if not upload:
                row["note"] = "it had landed before the hub restarted; not sent again"
            self.ctx.on_file(self.sid, row)

    def retry_failed(self) -> None:
        """Files refused for good (unreadable, a conflict, a permission) are tried once more."""
        ready_since = self.ctx.clock.monotonic() - self.ctx.upload.stable_s
        for rel, f in self.files.items():
            root = self._root_of(rel)
            if f.state == "error" and rel not in self.pending and root is not None:
                self.pending[rel] = Pending(Seen(rel, Path(f.path), f.size, f.mtime_ns, root), ready_since)
                self.reported.pop(rel, None)

    async def _give_up(self, p: Pending, why: str) -> None:
        rel = p.seen.rel
        self.pending.pop(rel, None)
        prev = self.files.get(rel)
        s = p.seen
        await self._store(FileState(rel, str(s.path), s.size, s.mtime_ns, "error",
                                    prev.md5 if prev else None, prev.generation if prev else None,
                                    prev.uploaded_at if prev else None, why, prev.uploads if prev else 0))
        self.reported[rel] = why
        self.ctx.on_file(self.sid, {"path": rel, "status": "error", "error": why})

    def _refused(self, p: Pending, why: str) -> None:
        p.refusals += 1
        if p.refusals >= REFUSALS_BEFORE_ERROR:
            self.pending.pop(p.seen.rel, None)
            task = asyncio.ensure_future(self._give_up(p, why))
            self.giving_up.add(task)
            task.add_done_callback(self.giving_up.discard)
            return
        p.not_before = self.ctx.clock.monotonic() + min(self.ctx.upload.retry_max_s, 2.0 ** p.refusals)


def _hash_then_stat(path: Path, size: int) -> tuple[str, int, os.stat_result]:
    """The MD5 of the first `size` bytes, and the file's stat right after (did it change meanwhile?)."""
    md5, done = md5_file(path, size)
    return md5, done, os.stat(path)


def _started_ns(started_at: str) -> int:
    """The session's start in epoch nanoseconds (far in the future when unreadable: all is baseline)."""
    try:
        return int(datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp() * 1e9)
    except (ValueError, AttributeError):
        return 1 << 62
