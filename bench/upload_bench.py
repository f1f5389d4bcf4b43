"""The session uploader's figures: rescans, hashing, the manifest, uploads to gcp-storage-emulator.

Run: `.venv/bin/python -m bench.upload_bench [--files 100000] [--small 1000] [--big-mb 200]`.

1. Rescan: `--files` files of 100 bytes in 100 folders, none changed since the
   last scan: our scan (os.scandir, size + mtime_ns against the manifest's
   view, no hashing) beside re-hashing every file as NexusLIMS-Logger does on
   each scan, same files, same run (page cache warm for both).
2. MD5: a 256 MiB file in the page cache hashed by hub.upload.hashing.md5_file
   (reads and hashes) beside hashlib.md5 over the same bytes already in memory.
3. Manifest: `--small` per-file stores, each committed before the next, in
   SQLite (what the uploader uses) beside tinydb with the session log's
   SafeJSONStorage (temporary file, fsync, rename), which rewrites the whole
   document per store.
4. Uploads through the Uploader (scan, hash, manifest, upload with `workers`
   threads) to each emulator on a loopback port (gcp-storage-emulator, then
   fake-gcs-server): `--small` files of 10 KB, beside the bare client sending
   the same files one after another, then one file of `--big-mb` MB
   (resumable, 8 MiB chunks). gcp-storage-emulator slows down as it holds
   more objects (it rewrites its own index per upload), so it bounds the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from hub.config import load_hub_config
from hub.sessions.model import Session, SessionSource
from hub.upload.hashing import md5_file
from hub.upload.manifest import FileState, Manifest
from hub.upload.scanner import Root, scan
from hub.upload.settings import StorageConfig, UploadConfig
from hub.upload.transfer import Bucket
from hub.upload.uploader import Uploader
from lecis.clock import SystemClock, iso_ts
from tests.hub.upload.emulators import BUCKET, Emulator, FakeGcsServer, GcpStorageEmulator


def make_tree(root: Path, files: int) -> None:
    per = max(1, files // 100)
    payload = b"x" * 100
    for i in range(files):
        folder = root / f"d{i // per:03d}"
        if i % per == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.csv").write_bytes(payload)


def bench_rescan(tmp: Path, files: int) -> None:
    root = tmp / "tree"
    t0 = time.perf_counter()
    make_tree(root, files)
    print(f"rescan: {files:,} files made in {time.perf_counter() - t0:.1f} s")
    roots = [Root(root)]
    first = scan(roots, {})
    known = {s.rel: (s.size, s.mtime_ns) for s in first.changed}
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = scan(roots, known)
        runs.append(time.perf_counter() - t0)
        assert not result.changed and result.files == files
    ours = min(runs)
    t0 = time.perf_counter()
    for s in first.changed:
        md5_file(s.path)
    rehash = time.perf_counter() - t0
    print(f"rescan of {files:,} unchanged files: {ours:.2f} s (target < 2 s); re-hashing every file "
          f"(NexusLIMS-Logger's way): {rehash:.2f} s; ours is {rehash / ours:.1f}x faster")


def bench_md5(tmp: Path) -> None:
    data = os.urandom(256 * 1024 * 1024)
    path = tmp / "md5.bin"
    path.write_bytes(data)
    md5_file(path)  # into the page cache
    best_ours = best_lib = float("inf")
    for _ in range(5):  # best of 5, interleaved: the machine is shared
        t0 = time.perf_counter()
        ours, _ = md5_file(path)
        best_ours = min(best_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        lib = hashlib.md5(data, usedforsecurity=False).hexdigest()
        best_lib = min(best_lib, time.perf_counter() - t0)
        assert ours == lib
    mb = len(data) / 1e6
    print(f"md5: ours (read + hash) {mb / best_ours:.0f} MB/s, hashlib on bytes in memory "
          f"{mb / best_lib:.0f} MB/s: {100 * best_lib / best_ours:.0f} % (target >= 80 %)")
    path.unlink()


def bench_manifest(tmp: Path, n: int) -> None:
    from tinydb import Query, TinyDB

    from hub.sessions.storage import SafeJSONStorage

    m = Manifest(tmp / "m-sqlite")
    t0 = time.perf_counter()
    for i in range(n):
        m.put("s", FileState(f"data/file{i:05d}.csv", f"/srv/out/data/file{i:05d}.csv", 10_000, i, "done",
                             "0" * 32, 1_700_000_000_000_000 + i, "2026-12-01T12:00:00.000Z", None, 1))
    sqlite_s = time.perf_counter() - t0
    m.close()
    db = TinyDB(tmp / "m-tinydb.json", storage=SafeJSONStorage)
    q = Query()
    t0 = time.perf_counter()
    for i in range(n):
        db.upsert({"session": "s", "rel": f"data/file{i:05d}.csv", "path": f"/srv/out/data/file{i:05d}.csv",
                   "size": 10_000, "mtime_ns": i, "md5": "0" * 32, "generation": 1_700_000_000_000_000 + i,
                   "uploaded_at": "2026-12-01T12:00:00.000Z", "state": "done"},
                  q.rel == f"data/file{i:05d}.csv")
    tiny_s = time.perf_counter() - t0
    db.close()
    print(f"manifest: {n:,} per-file stores: SQLite {1000 * sqlite_s / n:.2f} ms each ({sqlite_s:.2f} s), "
          f"tinydb+SafeJSONStorage {1000 * tiny_s / n:.2f} ms each ({tiny_s:.2f} s): "
          f"{tiny_s / sqlite_s:.1f}x slower, and it grows with the files already stored")


async def upload_run(tmp: Path, emu: Emulator, name: str, make: Any, expect: int) -> tuple[float, int]:
    watch = tmp / name
    watch.mkdir()
    path = tmp / f"{name}.yaml"
    path.write_text(f"hub: hub-1\nbroker: {{}}\ndata_dir: {tmp / (name + '-data')}\n"
                    f"storage: {{bucket: {BUCKET}, prefix: bench}}\n"
                    "upload: {scan_s: 0.2, stable_s: 0, final_timeout_s: 600, timeout_s: 120}\n"
                    f"watch:\n  bench-1: [{{path: {watch}}}]\n")
    config = load_hub_config(path)
    clock = SystemClock()
    session = Session(str(uuid.uuid4()), "bench-1", None, None, iso_ts(clock.now()), SessionSource.CLI)
    async with Uploader(config, config.data_dir, clock, lambda s, p: None, lambda s, r: None,
                        env={"STORAGE_EMULATOR_HOST": emu.url}) as up:
        up.begin(session)
        while up.progress(session.id).last_scan_at is None:
            await asyncio.sleep(0.01)
        size = make(watch)
        t0 = time.perf_counter()
        while up.progress(session.id).files_done < expect:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        result = await up.finish(session)
        assert result.verified, result.summary()
    return elapsed, size


def bare_client(tmp: Path, emu: Emulator, folder: Path) -> float:
    """The same files sent one after the other by the bare client: what the emulator itself allows."""
    bucket = Bucket(StorageConfig(BUCKET, "bare"), UploadConfig(), {"STORAGE_EMULATOR_HOST": emu.url})
    files = sorted(folder.iterdir())
    t0 = time.perf_counter()
    for f in files:
        md5, n = md5_file(f)
        bucket.upload(f, f"bare/{tmp.name}/{f.name}", md5, n, {}, 0)
    return len(files) / (time.perf_counter() - t0)


def bench_uploads(tmp: Path, kind: type[Emulator], small: int, big_mb: int) -> None:
    tmp = tmp / kind.kind
    emu = kind(tmp / "emulator")
    emu.start()
    try:
        def smalls(watch: Path) -> int:
            for i in range(small):
                (watch / f"s{i:05d}.csv").write_bytes(os.urandom(10_000))
            return small * 10_000

        def big(watch: Path) -> int:
            part = tmp / "big.part"
            with open(part, "wb") as fh:
                for _ in range(big_mb):
                    fh.write(os.urandom(1_000_000))
            os.rename(part, watch / "big.bin")  # appears whole, as a finished instrument file
            return big_mb * 1_000_000

        s, size = asyncio.run(upload_run(tmp, emu, "small", smalls, small))
        bare = bare_client(tmp, emu, tmp / "small")
        print(f"upload to {kind.kind}: {small:,} files of 10 KB in {s:.1f} s: {small / s:.0f} files/s, "
              f"{size / s / 1e6:.1f} MB/s (the bare client, one file after another, to the same emulator: "
              f"{bare:.0f} files/s)")
        s, size = asyncio.run(upload_run(tmp, emu, "big", big, 1))
        print(f"upload to {kind.kind}: one {big_mb} MB file in {s:.1f} s: {size / s / 1e6:.1f} MB/s")
    finally:
        emu.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--big-mb", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as tmp_text:
        tmp = Path(tmp_text)
        bench_rescan(tmp, args.files)
        bench_md5(tmp)
        bench_manifest(tmp, args.small)
        for kind in (GcpStorageEmulator, FakeGcsServer):
            bench_uploads(tmp, kind, args.small, args.big_mb)


if __name__ == "__main__":
    main()
